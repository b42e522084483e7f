"""The scheduler (an entry point): APScheduler decides *when*, pipeline does the work.

cron    the `[schedule] cron` string as an APScheduler trigger, with crontab's meaning kept
history the `schedule_runs` table: every run's outcome, for `ainews schedule status`
job     what one run does: resume unfinished sends, then the period's issue (once, ever)
daemon  `ainews schedule run`: the persisted job, misfires, and a clean stop on SIGTERM"""

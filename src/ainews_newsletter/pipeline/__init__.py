"""The one orchestrator, the only place rooms meet: select → render → deliver (issue, send),
and the mail that comes back → subscribers and ledger (feedback). Entry points (cli, demo,
schedule, web) call `pipeline.<function>`; the names below are that surface."""

from ainews_newsletter.models import Window
from ainews_newsletter.pipeline.issue import (
    SAMPLE_RECIPIENT,
    audience_list,
    build,
    carried_refs,
    lint,
    message_signer,
    open_ledger,
    open_subscribers,
    render_selection,
    resolve_period,
    sample_message,
    sample_recipient,
    select_posts,
    write_build,
)
from ainews_newsletter.pipeline.send import (
    PeriodTaken,
    SendPlan,
    claim_lease,
    claims_by_lease,
    claims_retry_at,
    delivery_status,
    execute_send,
    freeze_issue,
    make_transport,
    plan_send,
    retry_failed,
    send_settings,
    send_test,
    unfinished_issue_key,
    unfinished_issue_keys,
)

__all__ = [
    "SAMPLE_RECIPIENT", "PeriodTaken", "SendPlan", "Window", "audience_list", "build",
    "carried_refs", "claim_lease", "claims_by_lease", "claims_retry_at", "delivery_status",
    "execute_send", "freeze_issue", "lint", "make_transport", "message_signer", "open_ledger",
    "open_subscribers", "plan_send", "render_selection", "resolve_period", "retry_failed",
    "sample_message", "sample_recipient", "select_posts", "send_settings", "send_test",
    "unfinished_issue_key",
    "unfinished_issue_keys", "write_build",
]

"""The one orchestrator, the only place rooms meet: select → render → deliver (issue, send),
the mail that comes back → subscribers and ledger (feedback), the numbers of an issue and of
the list (reports) and the checks before a first send (doctor). Entry points (cli, demo,
schedule, web) import what they call from the submodule that does that job, e.g.
`from ainews_newsletter.pipeline.send import execute_send`; this package re-exports nothing,
so there is one way in."""

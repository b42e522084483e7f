"""Numbers → words, tables and pictures: an issue's report, the list's growth, their
warnings and SVG charts. Pure: the counting queries live with the tables they read (ledger,
subscribers, feedback events) and pipeline/reports.py brings them here."""

"""The delivery room: build each recipient's message, keep a per-recipient ledger, send."""

"""What mailbox providers check, checked before the first send: SPF, DKIM, DMARC, a bounce
domain that takes mail, the relay's TLS, the message itself. Each check is a small function
returning a Check with the exact fix; pipeline/doctor.py runs them with the config."""

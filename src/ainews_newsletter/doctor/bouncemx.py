"""The `bounce-mx` check: the domain bounces are sent back to ([bounces] address, else the
From address) can receive mail: an MX whose host has an address, or at least an A/AAAA
(RFC 5321's implicit MX, which works but which some senders do not try)."""

from __future__ import annotations

from ainews_newsletter.doctor.checks import Check, Status
from ainews_newsletter.doctor.dns import Lookup


def check_bounce_mx(lookup: Lookup, domain: str, mail_host: str | None = None) -> Check:
    """`mail_host`: the host that receives the domain's mail, when known (the bounce
    mailbox's IMAP host is a good guess), to name in the fix. Raises DnsUnreachable when
    DNS does not answer."""
    domain = domain.lower().rstrip(".")
    host = (mail_host or f"mail.{domain}").rstrip(".")
    fix = f"{domain}. MX 10 {host}."
    # Named in the detail when guessed: the fix stays a record to paste.
    which = "" if mail_host else (f" Below, {host} stands for the server that receives mail "
                                  f"for {domain} (it needs an A record).")
    exchanges = lookup.mx(domain)
    if exchanges == ["."]:
        return Check("bounce-mx", Status.FAIL, f"{domain} publishes a null MX (RFC 7505: it "
                     "takes no mail), so bounces cannot come back." + which, fix)
    if exchanges:
        reachable = [name for name in exchanges if name != "." and lookup.addresses(name)]
        if reachable:
            return Check("bounce-mx", Status.PASS,
                         f"{domain} takes mail at {', '.join(exchanges)}.")
        return Check("bounce-mx", Status.FAIL,
                     f"{domain}'s MX ({', '.join(exchanges)}) has no address (A/AAAA), so "
                     "bounces cannot come back.",
                     f"Give {exchanges[0]} an A record, or publish: {fix}")
    addresses = lookup.addresses(domain)
    if addresses:
        return Check("bounce-mx", Status.WARN,
                     f"{domain} has no MX, only an address ({', '.join(addresses)}): mail "
                     "falls back to it, but some senders do not try that." + which, fix)
    return Check("bounce-mx", Status.FAIL,
                 f"{domain} has neither an MX nor an address, so bounces cannot come back "
                 "and some receivers refuse mail from it." + which, fix)

"""`ainews doctor`: every check mailbox providers make, run with this configuration before
the first send. DNS checks ask only [doctor] nameservers when set; nothing is sent."""

from __future__ import annotations

import ipaddress

from ainews_newsletter.config import Config
from ainews_newsletter.doctor.bouncemx import check_bounce_mx
from ainews_newsletter.doctor.checks import Check, Status
from ainews_newsletter.doctor.dkimcheck import check_dkim
from ainews_newsletter.doctor.dmarc import check_dmarc
from ainews_newsletter.doctor.dns import DnsUnreachable, Lookup
from ainews_newsletter.doctor.spf import check_spf
from ainews_newsletter.errors import AinewsError
from ainews_newsletter.models import Window
from ainews_newsletter.pipeline.issue import build, lint
from ainews_newsletter.render.lint import Severity, sample_settings

DNS_CHECKS = ("spf", "dkim", "dmarc", "bounce-mx")


def _domain(address: str) -> str:
    return address.rpartition("@")[2].lower()


def _relay_addresses(lookup: Lookup, host: str) -> list[str]:
    """The relay's addresses, which SPF must authorise (an IP as given; a name looked up;
    this machine's relay has no public address to name: none)."""
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        if host.lower() == "localhost" or host.lower().endswith(".localhost"):
            return []
        return lookup.addresses(host)


def _relay_hosts(config: Config) -> list[str]:
    """[smtp] host, or with [[smtp.relays]] each relay's: SPF must authorise every one a
    message may leave through."""
    return list(dict.fromkeys(relay.host for relay in config.smtp.relays)) or [config.smtp.host]


def _dns_checks(config: Config) -> list[Check]:
    from_domain = _domain(config.newsletter.from_)
    bounce_domain = _domain(config.bounces.address) if config.bounces.address else from_domain
    key: bytes | None = None
    if config.dkim.private_key_path:
        try:
            key = config.resolve(config.dkim.private_key_path).read_bytes()
        except OSError:  # not readable: check_dkim says so, the other checks still run
            key = None
    try:
        lookup = Lookup(config.doctor.nameservers, config.doctor.timeout)
        spf = check_spf(lookup, list(dict.fromkeys([from_domain, bounce_domain])),
                        [address for host in _relay_hosts(config)
                         for address in _relay_addresses(lookup, host)])
        dkim = check_dkim(lookup, config.dkim, key, from_domain)
        dmarc = check_dmarc(lookup, from_domain, spf.status is Status.PASS,
                            config.dkim.domain if dkim.status is Status.PASS else None,
                            envelope_domain=bounce_domain)
        bounce = check_bounce_mx(lookup, bounce_domain)
    except DnsUnreachable as exc:
        return [Check(name, Status.FAIL, str(exc), "check [doctor] nameservers and the "
                      "network, then run `ainews doctor` again") for name in DNS_CHECKS]
    return [spf, dkim, dmarc, bounce]


def _message_check(config: Config) -> Check:
    """The sample issue against the lint gate (the sample's site and address included:
    those are checked even when there is no issue to build)."""
    samples = [f for f in sample_settings(config.newsletter) if f.severity is Severity.ERROR]
    try:
        rendered = build(config, Window())
        findings = lint(config, rendered)
    except AinewsError as exc:  # no posts in the window, or a key that cannot sign
        if samples:
            return Check("message", Status.FAIL, "; ".join(f.message for f in samples),
                         "set them in config.toml ([newsletter])")
        return Check("message", Status.WARN, f"no issue to check: {exc}",
                     "write posts for the current window, or check with `ainews build "
                     "--week …`")
    errors = [finding for finding in findings if finding.severity is Severity.ERROR]
    if errors:
        return Check("message", Status.FAIL, "; ".join(f.message for f in errors),
                     "fix these before sending (`ainews build` shows them too)")
    detail = (f"{rendered.period.key}: {rendered.html_bytes:,} bytes of HTML, "
              "List-Unsubscribe and one-click headers, the postal address")
    if findings:
        return Check("message", Status.WARN, detail + "; " + "; ".join(
            f.message for f in findings), "see `ainews build`")
    return Check("message", Status.PASS, detail)


def run_doctor(config: Config) -> list[Check]:
    from ainews_newsletter.delivery.probe import probe_smtp

    # The relay probe lives with the sender (it shares its TLS rules) and answers in the
    # delivery room's terms: turned into a Check here, where rooms meet.
    if not config.smtp.relays:
        smtp = probe_smtp(config.smtp)
        relays = [Check(smtp.name, Status(smtp.status), smtp.detail, smtp.fix)]
    else:  # each relay of [[smtp.relays]] as the sender would reach it, named
        relays = []
        for relay in config.smtp.relays:
            probe = probe_smtp(relay.smtp_settings(config.smtp))
            relays.append(Check(f"smtp {relay.label}", Status(probe.status),
                                f"relay {relay.label}: {probe.detail}", probe.fix))
    return [*_dns_checks(config), *relays, _message_check(config)]

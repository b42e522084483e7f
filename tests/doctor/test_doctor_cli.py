"""`ainews doctor` end to end: a project, its DKIM key, a DNS server on 127.0.0.1 serving a
right zone or a broken one, the relay (aiosmtpd), and the sample issue. A right setup passes
every check and exits 0; a broken record fails its own check, with the record to publish, and
exits 1 while the other checks keep their verdict."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from ainews_newsletter import clock
from ainews_newsletter.delivery.dkim import new_private_key
from ainews_newsletter.doctor.dkimcheck import dkim_txt_value
from tests.conftest import Project, SmtpServer
from tests.peers.dns import DnsPeer, Zones

WEDNESDAY_OF_W48 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)  # last complete week: W47


def _zone(key: bytes, spf: list[str]) -> Zones:
    return {"example.org": [
        *(("news", "TXT", record) for record in spf),
        ("news", "MX", "10 mail"), ("mail", "A", "203.0.113.25"),
        ("ainews._domainkey.news", "TXT", dkim_txt_value(key)),
        ("_dmarc.news", "TXT", "v=DMARC1; p=quarantine; rua=mailto:dmarc@example.org"),
    ]}


def _doctor(project: Project, server: SmtpServer, dns: DnsPeer, key: bytes) -> tuple[int, Any]:
    (project.root / "dkim.pem").write_bytes(key)
    project.write_config(f"""
        [dkim]
        selector = "ainews"
        domain = "news.example.org"
        private_key_path = "dkim.pem"

        [smtp]
        host = "127.0.0.1"
        port = {server.port}

        [doctor]
        nameservers = ["{dns.nameserver}"]
        timeout = 2
        """)
    with clock.use_clock(clock.frozen(WEDNESDAY_OF_W48)):
        result = project.run("doctor", "--json")
    return result.exit_code, json.loads(result.stdout)


def test_a_right_setup_passes_every_check(project: Project, smtp_server: SmtpServer,
                                          dns_peer: Callable[..., DnsPeer]) -> None:
    key = new_private_key()
    dns = dns_peer(_zone(key, ["v=spf1 ip4:127.0.0.1 -all"]))
    code, report = _doctor(project, smtp_server, dns, key)
    verdicts = {check["name"]: check["status"] for check in report["checks"]}
    assert verdicts == {"spf": "pass", "dkim": "pass", "dmarc": "pass", "bounce-mx": "pass",
                        "smtp": "pass", "message": "pass"}, report
    assert code == 0 and report["ok"] is True
    assert smtp_server.handler.messages == []  # nothing was sent


@pytest.mark.parametrize(("spf", "expected"), [
    # None published: the record to publish (a relay on this machine has no public address
    # to name, so the domain's own hosts).
    ([], 'news.example.org. TXT "v=spf1 a mx -all"'),
    (["v=spf1 ip4:127.0.0.1 -all", "v=spf1 -all"], "2 SPF records"),
    (["v=spf1 +all"], "-all"),
])
def test_a_broken_spf_fails_its_check_only(project: Project, smtp_server: SmtpServer,
                                           dns_peer: Callable[..., DnsPeer],
                                           spf: list[str], expected: str) -> None:
    key = new_private_key()
    dns = dns_peer(_zone(key, spf))
    code, report = _doctor(project, smtp_server, dns, key)
    checks = {check["name"]: check for check in report["checks"]}
    assert code == 1 and report["ok"] is False
    assert checks["spf"]["status"] == "fail"
    assert expected in checks["spf"]["fix"] + checks["spf"]["detail"]
    assert {name: check["status"] for name, check in checks.items() if name != "spf"} == {
        "dkim": "pass", "dmarc": "pass", "bounce-mx": "pass", "smtp": "pass",
        "message": "pass"}  # DMARC still aligns through DKIM


def test_an_unreachable_dns_server_is_one_line_per_check(
        project: Project, smtp_server: SmtpServer, dns_peer: Callable[..., DnsPeer]) -> None:
    silent = dns_peer({}, silent=True)
    code, report = _doctor(project, smtp_server, silent, new_private_key())
    dns_checks = [c for c in report["checks"] if c["name"] in ("spf", "dkim", "dmarc",
                                                                "bounce-mx")]
    assert code == 1 and len(dns_checks) == 4
    assert all(c["status"] == "fail" and silent.nameserver in c["detail"] for c in dns_checks)
    assert {c["name"]: c["status"] for c in report["checks"]}["smtp"] == "pass"


def test_a_missing_key_fails_dkim_and_the_rest_still_report(
        project: Project, smtp_server: SmtpServer, dns_peer: Callable[..., DnsPeer]) -> None:
    key = new_private_key()
    dns = dns_peer(_zone(key, ["v=spf1 a mx -all"]))
    _doctor(project, smtp_server, dns, key)  # writes the config pointing at dkim.pem
    (project.root / "dkim.pem").unlink()
    with clock.use_clock(clock.frozen(WEDNESDAY_OF_W48)):
        result = project.run("doctor", "--json")
    report = json.loads(result.stdout)
    verdicts = {check["name"]: check["status"] for check in report["checks"]}
    assert result.exit_code == 1 and verdicts["dkim"] == "fail"
    assert verdicts["spf"] == verdicts["smtp"] == "pass"
    assert verdicts["message"] in ("pass", "warn")  # built unsigned, not a crash


def test_the_samples_site_fails_the_message_check_even_without_posts(
        project: Project, smtp_server: SmtpServer, dns_peer: Callable[..., DnsPeer]) -> None:
    key = new_private_key()
    dns = dns_peer(_zone(key, ["v=spf1 a mx -all"]))
    _doctor(project, smtp_server, dns, key)
    text = project.config_path.read_text(encoding="utf-8").replace(
        'base_url = "https://news.example.org"', 'base_url = "https://ainews.example"')
    project.config_path.write_text(text, encoding="utf-8")
    for post in project.posts.iterdir():
        post.unlink()
    with clock.use_clock(clock.frozen(WEDNESDAY_OF_W48)):
        result = project.run("doctor", "--json")
    checks = {check["name"]: check for check in json.loads(result.stdout)["checks"]}
    assert result.exit_code == 1 and checks["message"]["status"] == "fail"
    assert "base_url is still the sample's" in checks["message"]["detail"]


def test_an_ipv6_relay_is_judged_by_its_own_family(dns_peer: Callable[..., DnsPeer]) -> None:
    from ainews_newsletter.doctor.dns import Lookup
    from ainews_newsletter.doctor.spf import check_spf

    dns = dns_peer({"example.org": [
        ("news", "TXT", "v=spf1 mx a:smtp.example.org -all"), ("news", "MX", "10 mail"),
        ("mail", "A", "203.0.113.25"), ("smtp", "A", "203.0.113.7"),
        ("smtp", "AAAA", "2001:db8::7")]})
    lookup = Lookup([dns.nameserver], 2)
    both = check_spf(lookup, ["news.example.org"], ["203.0.113.7", "2001:db8::7"])
    assert both.status.value == "pass", both.detail  # no ValueError, no shared budget
    other = check_spf(lookup, ["news.example.org"], ["2001:db8::99"])
    assert other.status.value == "fail" and "2001:db8::99" in other.detail

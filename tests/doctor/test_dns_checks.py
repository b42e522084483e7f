"""The DNS half of `ainews doctor` (spf, dkim, dmarc, bounce-mx) against a real DNS server on
127.0.0.1 (tests/peers/dns.py): a right zone passes everything; each broken zone fails (or
warns) its own check with the record to publish, while the other checks keep their verdict."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ainews_newsletter.config import DkimConfig
from ainews_newsletter.doctor.bouncemx import check_bounce_mx
from ainews_newsletter.doctor.checks import Check, Status
from ainews_newsletter.doctor.dkimcheck import check_dkim, dkim_txt_record, dkim_txt_value
from ainews_newsletter.doctor.dmarc import check_dmarc
from ainews_newsletter.doctor.dns import DnsUnreachable, Lookup, parse_nameserver
from ainews_newsletter.doctor.spf import check_spf
from ainews_newsletter.errors import ConfigError
from tests.peers.dns import DnsPeer, Value, Zones

FROM = "news.example.org"
RELAY = "smtp.example.org"
RELAY_IP = "203.0.113.7"
SELECTOR = "ainews"
DKIM_NAME = f"{SELECTOR}._domainkey.{FROM}"
SPF_RIGHT = f"v=spf1 ip4:{RELAY_IP} -all"
DMARC_RIGHT = "v=DMARC1; p=none; rua=mailto:dmarc@example.org"
DMARC_STARTER = f'_dmarc.{FROM}. TXT "v=DMARC1; p=none; rua=mailto:dmarc@example.org"'
Start = Callable[..., DnsPeer]


def _pem(bits: int) -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@pytest.fixture(scope="module")
def key() -> bytes:
    return _pem(2048)


@pytest.fixture(scope="module")
def other_key() -> bytes:
    return _pem(2048)


@pytest.fixture(scope="module")
def big_key() -> bytes:
    return _pem(4096)


@pytest.fixture
def dkim_config(key: bytes, tmp_path: Path) -> DkimConfig:
    path = tmp_path / "dkim.pem"
    path.write_bytes(key)
    return DkimConfig(selector=SELECTOR, domain=FROM, private_key_path=str(path))


def zones(key: bytes, change: dict[tuple[str, str], list[Value]] | None = None,
          extra: Zones | None = None) -> Zones:
    """The right zone for example.org, with the (name, type) record sets in `change`
    replaced (an empty list removes them), plus `extra` zones."""
    records: dict[tuple[str, str], list[Value]] = {
        ("news", "TXT"): [SPF_RIGHT],
        ("news", "MX"): ["10 mail"],
        ("mail", "A"): ["203.0.113.25"],
        ("smtp", "A"): [RELAY_IP],
        (f"{SELECTOR}._domainkey.news", "TXT"): [dkim_txt_value(key)],
        ("_dmarc.news", "TXT"): [DMARC_RIGHT],
    }
    records.update(change or {})
    zone = [(name, rtype, value) for (name, rtype), values in records.items()
            for value in values]
    return {"example.org": zone, **(extra or {})}


def run_checks(peer: DnsPeer, dkim: DkimConfig, key: bytes | None,
               bounce_domain: str = FROM) -> dict[str, Check]:
    """The DNS checks wired as the doctor wires them: DMARC hears what SPF and DKIM found."""
    lookup = Lookup([peer.nameserver], 2.0)
    spf = check_spf(lookup, [FROM, bounce_domain], lookup.addresses(RELAY))
    dkim_check = check_dkim(lookup, dkim, key, FROM)
    dkim_domain = dkim.domain if dkim_check.status is not Status.FAIL and dkim.enabled else None
    dmarc = check_dmarc(lookup, FROM, spf.status is Status.PASS, dkim_domain,
                        envelope_domain=bounce_domain)
    return {check.name: check for check in
            (spf, dkim_check, dmarc, check_bounce_mx(lookup, bounce_domain))}


def verdicts(checks: dict[str, Check]) -> dict[str, Status]:
    return {name: check.status for name, check in checks.items()}


ALL_PASS = {"spf": Status.PASS, "dkim": Status.PASS, "dmarc": Status.PASS,
            "bounce-mx": Status.PASS}


def test_a_right_zone_passes_every_check(dns_peer: Start, key: bytes,
                                         dkim_config: DkimConfig) -> None:
    checks = run_checks(dns_peer(zones(key)), dkim_config, key)
    assert verdicts(checks) == ALL_PASS, checks
    assert all(check.fix == "" for check in checks.values())
    assert RELAY_IP in checks["spf"].detail and "aligns" in checks["dkim"].detail


# --- spf -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("published", "fix_value", "said"), [
    ([], SPF_RIGHT, "no SPF record"),
    ([SPF_RIGHT, "v=spf1 a -all"], f"v=spf1 ip4:{RELAY_IP} a -all", "2 SPF records"),
    ([f"v=spf1 ip4:{RELAY_IP} +all"], SPF_RIGHT, "+all"),
    ([f"v=spf1 ip4:{RELAY_IP} ?all"], SPF_RIGHT, "?all"),
    ([f"v=spf1 ip4:{RELAY_IP}"], SPF_RIGHT, "does not end in -all or ~all"),
    (["v=spf1 ip4:198.51.100.1 ~all"], f"v=spf1 ip4:{RELAY_IP} ip4:198.51.100.1 ~all",
     f"{RELAY_IP} is not authorized"),
    (["v=spf1 ip4:300.1.2.3 -all"], SPF_RIGHT, "does not parse"),
    (["v=spf1 include:loop.example.org -all"], f"v=spf1 ip4:{RELAY_IP} "
     "include:loop.example.org -all", "permerror"),
], ids=["none", "two", "plus-all", "neutral-all", "no-all", "relay-missing", "unparsable",
        "include-loop"])
def test_a_broken_spf_record_fails_spf_alone(dns_peer: Start, key: bytes,
                                             dkim_config: DkimConfig, published: list[Value],
                                             fix_value: str, said: str) -> None:
    loop: list[Value] = ["v=spf1 include:loop.example.org -all"]
    peer = dns_peer(zones(key, {("news", "TXT"): published, ("loop", "TXT"): loop}))
    checks = run_checks(peer, dkim_config, key)
    assert verdicts(checks) == {**ALL_PASS, "spf": Status.FAIL}, checks
    assert said in checks["spf"].detail
    assert checks["spf"].fix == f'{FROM}. TXT "{fix_value}"'


@pytest.mark.parametrize("published", [
    "v=spf1 include:_spf.example.org ~all",  # _spf: ip4:203.0.113.0/24
    f"v=spf1 a:{RELAY} -all",
    "v=spf1 mx:relays.example.org -all",  # relays: MX smtp
    "v=spf1 -ip4:192.0.2.1 redirect=_spf.example.org",
])
def test_the_relay_may_be_authorized_indirectly(dns_peer: Start, key: bytes,
                                                dkim_config: DkimConfig, published: str) -> None:
    peer = dns_peer(zones(key, {("news", "TXT"): [published],
                                ("_spf", "TXT"): ["v=spf1 ip4:203.0.113.0/24 -all"],
                                ("relays", "MX"): ["10 smtp"]}))
    assert verdicts(run_checks(peer, dkim_config, key)) == ALL_PASS


def test_spf_checks_the_bounce_domain_too(dns_peer: Start, key: bytes,
                                          dkim_config: DkimConfig) -> None:
    peer = dns_peer(zones(key, {("bounces", "MX"): ["10 mail"]}))
    checks = run_checks(peer, dkim_config, key, bounce_domain="bounces.example.org")
    assert checks["spf"].status is Status.FAIL
    assert checks["spf"].fix == f'bounces.example.org. TXT "{SPF_RIGHT}"'
    assert "bounces.example.org: no SPF record" in checks["spf"].detail
    assert f"{FROM}:" not in checks["spf"].detail  # the From domain's record is right


def test_without_the_relay_address_the_fix_authorizes_a_and_mx(dns_peer: Start,
                                                               key: bytes) -> None:
    peer = dns_peer(zones(key, {("news", "TXT"): []}))
    check = check_spf(Lookup([peer.nameserver], 2.0), [FROM], [])
    assert check.status is Status.FAIL
    assert check.fix == f'{FROM}. TXT "v=spf1 a mx -all"'
    assert "not known" in check.detail


def test_a_relay_on_this_machine_is_not_held_against_spf(dns_peer: Start, key: bytes) -> None:
    peer = dns_peer(zones(key))
    check = check_spf(Lookup([peer.nameserver], 2.0), [FROM], ["127.0.0.1"])
    assert check.status is Status.PASS and "this machine" in check.detail


# --- dkim ----------------------------------------------------------------------------------

def test_a_dkim_record_of_another_key_fails_dkim_alone(dns_peer: Start, key: bytes,
                                                       other_key: bytes,
                                                       dkim_config: DkimConfig) -> None:
    peer = dns_peer(zones(key, {(f"{SELECTOR}._domainkey.news", "TXT"):
                                [dkim_txt_value(other_key)]}))
    checks = run_checks(peer, dkim_config, key)
    assert verdicts(checks) == {**ALL_PASS, "dkim": Status.FAIL}, checks
    assert "not the public half" in checks["dkim"].detail
    assert checks["dkim"].fix == f"{DKIM_NAME}. TXT {dkim_txt_record(key)}"


@pytest.mark.parametrize("published", [[], ["v=DKIM1; k=rsa; p="], ["v=DKIM1; k=rsa; p=A", "x"]],
                         ids=["missing", "revoked", "garbage-key"])
def test_no_usable_dkim_record_fails_with_the_record(dns_peer: Start, key: bytes,
                                                     dkim_config: DkimConfig,
                                                     published: list[Value]) -> None:
    peer = dns_peer(zones(key, {(f"{SELECTOR}._domainkey.news", "TXT"): published}))
    checks = run_checks(peer, dkim_config, key)
    assert verdicts(checks) == {**ALL_PASS, "dkim": Status.FAIL}, checks
    assert checks["dkim"].fix == f"{DKIM_NAME}. TXT {dkim_txt_record(key)}"


def test_a_dkim_record_split_over_strings_is_valid(dns_peer: Start, key: bytes,
                                                   dkim_config: DkimConfig) -> None:
    value = dkim_txt_value(key)
    split: Value = (value[:40], value[40:200], value[200:])
    peer = dns_peer(zones(key, {(f"{SELECTOR}._domainkey.news", "TXT"): [split]}))
    assert verdicts(run_checks(peer, dkim_config, key)) == ALL_PASS


def test_a_dkim_record_too_long_for_udp_is_fetched_over_tcp(dns_peer: Start, big_key: bytes,
                                                            tmp_path: Path) -> None:
    # A 2048-bit key's record (410 bytes) still fits a 512-byte UDP answer here; a 4096-bit
    # one (754 bytes) cannot, so the answer comes back truncated and must be asked over TCP.
    big = big_key
    (tmp_path / "big.pem").write_bytes(big)
    config = DkimConfig(selector=SELECTOR, domain=FROM, private_key_path=str(tmp_path / "big.pem"))
    peer = dns_peer(zones(big))
    assert verdicts(run_checks(peer, config, big)) == ALL_PASS
    assert (DKIM_NAME, "TXT", "udp") in peer.queries
    assert (DKIM_NAME, "TXT", "tcp") in peer.queries


def test_the_dkim_fix_is_split_into_strings_dns_takes(key: bytes, big_key: bytes) -> None:
    big = big_key
    record = dkim_txt_record(big)
    strings = re.findall(r'"([^"]*)"', record)
    assert record == " ".join(f'"{s}"' for s in strings)
    assert [len(s) for s in strings] == [255, 255, 244]
    assert "".join(strings) == dkim_txt_value(big)
    assert dkim_txt_record(key).startswith('"v=DKIM1; k=rsa; p=MIIBIjAN')


def test_unset_dkim_warns_with_how_to_make_a_key(dns_peer: Start, key: bytes) -> None:
    peer = dns_peer(zones(key))
    checks = run_checks(peer, DkimConfig(), None)
    assert verdicts(checks) == {**ALL_PASS, "dkim": Status.WARN}, checks
    assert "ainews dkim keygen --selector" in checks["dkim"].fix


def test_a_signing_domain_outside_the_from_domain_warns(dns_peer: Start, key: bytes,
                                                        tmp_path: Path) -> None:
    (tmp_path / "k.pem").write_bytes(key)
    config = DkimConfig(selector=SELECTOR, domain="mailer.example.net",
                        private_key_path=str(tmp_path / "k.pem"))
    peer = dns_peer(zones(key, extra={"example.net": [
        (f"{SELECTOR}._domainkey.mailer", "TXT", dkim_txt_value(key))]}))
    check = check_dkim(Lookup([peer.nameserver], 2.0), config, key, FROM)
    assert check.status is Status.WARN and "does not align" in check.detail
    assert f"{SELECTOR}._domainkey.{FROM}. TXT" in check.fix


def test_an_unreadable_key_fails(dns_peer: Start, key: bytes, dkim_config: DkimConfig) -> None:
    lookup = Lookup([dns_peer(zones(key)).nameserver], 2.0)
    assert check_dkim(lookup, dkim_config, None, FROM).status is Status.FAIL
    assert check_dkim(lookup, dkim_config, b"not a key", FROM).status is Status.FAIL


# --- dmarc ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("published", "said"), [
    ([], "No DMARC record at _dmarc.news.example.org or _dmarc.example.org"),
    ([DMARC_RIGHT, "v=DMARC1; p=reject"], "2 DMARC records"),
    (["v=DMARC1; p=bogus"], "p=bogus is not one of"),
    (["v=DMARC1; rua=mailto:dmarc@example.org"], "p= "),
], ids=["none", "two", "bad-policy", "no-policy"])
def test_a_missing_or_broken_dmarc_record_fails_dmarc_alone(
        dns_peer: Start, key: bytes, dkim_config: DkimConfig, published: list[Value],
        said: str) -> None:
    peer = dns_peer(zones(key, {("_dmarc.news", "TXT"): published}))
    checks = run_checks(peer, dkim_config, key)
    assert verdicts(checks) == {**ALL_PASS, "dmarc": Status.FAIL}, checks
    assert said in checks["dmarc"].detail
    assert checks["dmarc"].fix == DMARC_STARTER


def test_dmarc_at_the_organizational_domain_counts(dns_peer: Start, key: bytes,
                                                   dkim_config: DkimConfig) -> None:
    peer = dns_peer(zones(key, {("_dmarc.news", "TXT"): [],
                                ("_dmarc", "TXT"): ["v=DMARC1; p=reject; sp=quarantine"]}))
    checks = run_checks(peer, dkim_config, key)
    assert verdicts(checks) == ALL_PASS
    assert "_dmarc.example.org" in checks["dmarc"].detail and "p=quarantine" in checks[
        "dmarc"].detail


@pytest.mark.parametrize(("policy", "status"), [("reject", Status.FAIL),
                                                ("quarantine", Status.FAIL),
                                                ("none", Status.WARN)])
def test_dmarc_with_nothing_aligned(dns_peer: Start, key: bytes, policy: str,
                                    status: Status) -> None:
    # No DKIM, and the envelope sender at another organization (whose SPF passes): nothing
    # speaks for example.org.
    bounce = "bounce.example.net"
    peer = dns_peer(zones(key, {("_dmarc.news", "TXT"): [
        f"v=DMARC1; p={policy}; rua=mailto:reports@example.org"]}, extra={"example.net": [
            ("bounce", "TXT", SPF_RIGHT), ("bounce", "MX", "10 mx"), ("mx", "A", "192.0.2.25")]}))
    checks = run_checks(peer, DkimConfig(), None, bounce_domain=bounce)
    assert verdicts(checks) == {**ALL_PASS, "dkim": Status.WARN, "dmarc": status}, checks
    assert "Neither DKIM nor SPF aligns" in checks["dmarc"].detail
    relax = f'_dmarc.{FROM}. TXT "v=DMARC1; p=none; rua=mailto:reports@example.org"'
    assert (relax in checks["dmarc"].fix.splitlines()) == (status is Status.FAIL)
    assert "[dkim] domain" in checks["dmarc"].fix


def test_dmarc_aligned_by_dkim_alone_passes(dns_peer: Start, key: bytes,
                                            dkim_config: DkimConfig) -> None:
    peer = dns_peer(zones(key, {("_dmarc.news", "TXT"): ["v=DMARC1; p=reject"]}, extra={
        "example.net": [("bounce", "TXT", SPF_RIGHT), ("bounce", "MX", "10 mx"),
                        ("mx", "A", "192.0.2.25")]}))
    checks = run_checks(peer, dkim_config, key, bounce_domain="bounce.example.net")
    assert verdicts(checks) == ALL_PASS
    assert "DKIM (d=news.example.org)" in checks["dmarc"].detail
    assert "SPF" not in checks["dmarc"].detail.split("Aligned:")[1]


# --- bounce-mx -----------------------------------------------------------------------------

def test_a_bounce_domain_without_mx_or_address_fails_bounce_mx_alone(
        dns_peer: Start, key: bytes, dkim_config: DkimConfig) -> None:
    peer = dns_peer(zones(key, {("bounces", "TXT"): [SPF_RIGHT]}))
    checks = run_checks(peer, dkim_config, key, bounce_domain="bounces.example.org")
    assert verdicts(checks) == {**ALL_PASS, "bounce-mx": Status.FAIL}, checks
    assert checks["bounce-mx"].fix == "bounces.example.org. MX 10 mail.bounces.example.org."
    lookup = Lookup([peer.nameserver], 2.0)
    named = check_bounce_mx(lookup, "bounces.example.org", mail_host="imap.example.org")
    assert named.fix == "bounces.example.org. MX 10 imap.example.org."


@pytest.mark.parametrize(("records", "status"), [
    ({("bounces", "A"): ["203.0.113.30"]}, Status.WARN),
    ({("bounces", "MX"): ["10 nowhere"]}, Status.FAIL),
    ({("bounces", "MX"): ["0 ."]}, Status.FAIL),
    ({("bounces", "MX"): ["20 nowhere", "10 mail"]}, Status.PASS),
], ids=["address-only", "mx-without-address", "null-mx", "one-mx-reachable"])
def test_bounce_mx_verdicts(dns_peer: Start, key: bytes,
                            records: dict[tuple[str, str], list[Value]], status: Status) -> None:
    peer = dns_peer(zones(key, records))
    check = check_bounce_mx(Lookup([peer.nameserver], 2.0), "bounces.example.org")
    assert check.status is status, check
    assert (check.fix == "") == (status is Status.PASS)


# --- the resolver --------------------------------------------------------------------------

def test_a_server_that_does_not_answer_is_named_quickly(dns_peer: Start, key: bytes,
                                                        dkim_config: DkimConfig) -> None:
    peer = dns_peer({}, silent=True)
    lookup = Lookup([peer.nameserver], 0.5)
    runs: list[Callable[[], Check]] = [lambda: check_spf(lookup, [FROM], []),
                                       lambda: check_dkim(lookup, dkim_config, key, FROM),
                                       lambda: check_dmarc(lookup, FROM, True, FROM),
                                       lambda: check_bounce_mx(lookup, FROM)]
    for run in runs:
        started = time.monotonic()
        with pytest.raises(DnsUnreachable, match=peer.nameserver.replace(".", r"\.")):
            run()
        assert time.monotonic() - started < 3


def test_only_the_configured_servers_are_asked(dns_peer: Start, key: bytes) -> None:
    peer = dns_peer(zones(key))
    lookup = Lookup([peer.nameserver], 2.0)
    # A name the test server does not serve is refused there; no system resolver answers.
    with pytest.raises(DnsUnreachable, match="REFUSED"):
        lookup.addresses("example.com")
    assert ("example.com", "A", "udp") in peer.queries


def test_lookup_answers(dns_peer: Start, key: bytes) -> None:
    peer = dns_peer(zones(key, {("news", "MX"): ["20 backup", "10 mail"],
                                ("news", "AAAA"): ["2001:db8::7"], ("news", "A"): [RELAY_IP]}))
    lookup = Lookup([peer.nameserver], 2.0)
    assert lookup.mx(FROM) == ["mail.example.org", "backup.example.org"]
    assert lookup.addresses(FROM) == [RELAY_IP, "2001:db8::7"]
    assert lookup.txt(FROM) == [SPF_RIGHT]
    assert lookup.txt("missing.example.org") == []  # NXDOMAIN
    assert lookup.mx("mail.example.org") == []  # the name exists, without MX


@pytest.mark.parametrize(("text", "parsed"), [
    ("127.0.0.1:5353", ("127.0.0.1", 5353)), ("192.0.2.53", ("192.0.2.53", 53)),
    ("[::1]:5353", ("::1", 5353)), ("::1", ("::1", 53))])
def test_nameservers_are_host_and_port(text: str, parsed: tuple[str, int]) -> None:
    assert parse_nameserver(text) == parsed


@pytest.mark.parametrize("text", ["dns.example.org:53", "127.0.0.1:0", "127.0.0.1:x"])
def test_a_bad_nameserver_is_a_config_error(text: str) -> None:
    with pytest.raises(ConfigError, match=r"doctor\.nameservers"):
        Lookup([text], 1.0)

"""The `spf` check: each sending domain (the From domain, and the bounce domain when another)
has exactly one SPF record, it parses, it ends in `-all` or `~all`, and it authorizes the
relay's address.

Our own small parser and evaluator on dnspython results rather than pyspf: pyspf does its
live lookups through its own DNS code (pydns or dnspython with the system's resolvers), so it
would not honour `[doctor] nameservers` (the only servers the doctor may ask, and how the tests
reach their server on 127.0.0.1); and the doctor needs the parsed terms anyway, to write a
fixed record that keeps what the domain already authorizes."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from ainews_newsletter.doctor.checks import Check, Status
from ainews_newsletter.doctor.dns import Lookup, txt_record

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_LOOKUPS = 10  # RFC 7208 4.6.4: more DNS-querying terms than this is a permerror
RESULTS = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}
# Addresses mail never leaves from to the Internet: a relay here (a Postfix on this machine, a
# host on the office network) sends from some public address this program cannot see.
UNROUTED = [ipaddress.ip_network(net) for net in (
    "127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10",
    "169.254.0.0/16", "0.0.0.0/8", "::1/128", "fc00::/7", "fe80::/10", "::/128")]

_MODIFIER = re.compile(r"^([a-z][a-z0-9_.-]*)=(.*)$", re.I)
_MECHANISM = re.compile(r"^([+~?-]?)([a-z0-9]+)(.*)$", re.I)
_DOMAIN_CIDR = re.compile(r"^(?::([^/]+))?(?:/(\d{1,2}))?(?://(\d{1,3}))?$")


class SpfSyntaxError(ValueError):
    """The record does not parse (RFC 7208 permerror)."""


@dataclass(frozen=True)
class Term:
    text: str  # as published, to write it back into a fixed record
    qualifier: str  # + - ~ ?
    mechanism: str  # all include a mx ip4 ip6 exists ptr
    domain: str | None = None
    network: IpNetwork | None = None
    cidr4: int = 32
    cidr6: int = 128


@dataclass(frozen=True)
class SpfRecord:
    terms: tuple[Term, ...]
    redirect: str | None

    @property
    def all_qualifier(self) -> str | None:
        """The qualifier of the first `all` (evaluation stops there), or None."""
        return next((t.qualifier for t in self.terms if t.mechanism == "all"), None)


def is_spf(value: str) -> bool:
    return value.lower() == "v=spf1" or value.lower().startswith("v=spf1 ")


def parse_spf(value: str) -> SpfRecord:
    words = value.split()
    if not words or words[0].lower() != "v=spf1":
        raise SpfSyntaxError("it does not start with v=spf1")
    terms: list[Term] = []
    redirect: str | None = None
    for word in words[1:]:
        modifier = _MODIFIER.match(word)
        if modifier:
            name, argument = modifier.group(1).lower(), modifier.group(2)
            if name == "redirect":
                if redirect is not None or not argument:
                    raise SpfSyntaxError(f"bad or repeated {word!r}")
                redirect = argument
            continue  # exp= and unknown modifiers are ignored (RFC 7208 6)
        terms.append(_mechanism(word))
    return SpfRecord(tuple(terms), redirect)


def _mechanism(word: str) -> Term:
    found = _MECHANISM.match(word)
    if not found:
        raise SpfSyntaxError(f"{word!r} is not a mechanism")
    qualifier, name, rest = found.group(1) or "+", found.group(2).lower(), found.group(3)
    if name == "all" and not rest:
        return Term(word, qualifier, name)
    if name in ("include", "exists") and rest.startswith(":") and len(rest) > 1:
        return Term(word, qualifier, name, domain=rest[1:])
    if name in ("ip4", "ip6") and rest.startswith(":"):
        try:
            network = ipaddress.ip_network(rest[1:], strict=False)
        except ValueError:
            raise SpfSyntaxError(f"{word!r}: not an address or range") from None
        if network.version != int(name[-1]):
            raise SpfSyntaxError(f"{word!r}: not an IPv{name[-1]} address")
        return Term(word, qualifier, name, network=network)
    if name in ("a", "mx", "ptr"):
        parts = _DOMAIN_CIDR.match(rest)
        if parts and not (name == "ptr" and (parts.group(2) or parts.group(3))):
            cidr4, cidr6 = int(parts.group(2) or 32), int(parts.group(3) or 128)
            if cidr4 <= 32 and cidr6 <= 128:
                return Term(word, qualifier, name, domain=parts.group(1), cidr4=cidr4,
                            cidr6=cidr6)
    raise SpfSyntaxError(f"{word!r} is not a valid mechanism")


class _PermError(Exception):
    pass


class _CheckHost:
    """check_host() of RFC 7208, for the one question asked here: does this address pass?
    Macros (%{i}…) are not expanded: such a term counts as not matching."""

    def __init__(self, lookup: Lookup) -> None:
        self.lookup = lookup
        self.lookups = 0

    def spend(self) -> None:
        self.lookups += 1
        if self.lookups > MAX_LOOKUPS:
            raise _PermError(f"more than {MAX_LOOKUPS} DNS lookups (include, a, mx, …)")

    def result(self, domain: str, address: IpAddress) -> str:
        """pass, fail, softfail, neutral, none, or permerror."""
        try:
            return self._check_host(domain, address)
        except _PermError as exc:
            return f"permerror: {exc}"

    def _check_host(self, domain: str, address: IpAddress) -> str:
        records = [value for value in self.lookup.txt(domain) if is_spf(value)]
        if not records:
            return "none"
        if len(records) > 1:
            raise _PermError(f"{domain} has {len(records)} SPF records")
        try:
            record = parse_spf(records[0])
        except SpfSyntaxError as exc:
            raise _PermError(f"{domain}: {exc}") from None
        for term in record.terms:
            if self._matches(term, domain, address):
                return RESULTS[term.qualifier]
        if record.redirect:
            self.spend()
            outcome = self._check_host(record.redirect, address)
            if outcome == "none":
                raise _PermError(f"redirect={record.redirect} has no SPF record")
            return outcome
        return "neutral"

    def _matches(self, term: Term, domain: str, address: IpAddress) -> bool:
        target = term.domain or domain
        if term.mechanism == "all":
            return True
        if term.network is not None:
            return address.version == term.network.version and address in term.network
        if term.mechanism in ("a", "mx", "include", "exists", "ptr"):
            self.spend()
        if "%" in target or term.mechanism == "ptr":
            return False  # a macro or ptr (deprecated) cannot be decided here
        if term.mechanism == "include":
            outcome = self._check_host(target, address)
            if outcome == "none":
                raise _PermError(f"include:{target} has no SPF record")
            return outcome == "pass"
        if term.mechanism == "exists":
            return bool(self.lookup.addresses(target))
        hosts = [target] if term.mechanism == "a" else [
            host for host in self.lookup.mx(target)[:MAX_LOOKUPS] if host != "."]
        prefix = term.cidr4 if address.version == 4 else term.cidr6
        for host in hosts:
            for found in self.lookup.addresses(host):
                # Only addresses of the relay's own family (RFC 7208 5.3: A for an IPv4
                # sender, AAAA for IPv6); the other family's prefix would not even parse.
                if ipaddress.ip_address(found).version != address.version:
                    continue
                network = ipaddress.ip_network(f"{found}/{prefix}", strict=False)
                if address in network:
                    return True
        return False


def check_spf(lookup: Lookup, domains: list[str], relay_addresses: list[str]) -> Check:
    """`domains`: the From domain and the envelope (bounce) domain; `relay_addresses`: the
    relay host's A/AAAA (empty when unknown). Raises DnsUnreachable when DNS does not answer."""
    relay = [ipaddress.ip_address(address) for address in dict.fromkeys(relay_addresses)]
    public = [address for address in relay
              if not any(address in net for net in UNROUTED if net.version == address.version)]
    problems: list[str] = []
    found: list[str] = []
    fixes: list[str] = []
    for domain in dict.fromkeys(d.lower().rstrip(".") for d in domains):
        values = [value for value in lookup.txt(domain) if is_spf(value)]
        trouble = _record_problems(lookup, domain, values, public)
        if trouble:
            problems.append(f"{domain}: {'; '.join(trouble)}")
            fixes.append(_suggested(domain, values, public))
        else:
            found.append(f"{domain}: {values[0]}")
    if not relay:
        note = " The relay's address is not known, so its authorization was not checked."
    elif not public:
        note = (f" The relay ({', '.join(map(str, relay))}) is on this machine or a private "
                "network: the public address mail leaves from is not known here, so its "
                "authorization was not checked.")
    else:
        note = f" Relay address checked: {', '.join(map(str, public))}."
    if problems:
        return Check("spf", Status.FAIL,
                     ". ".join(problems) + "." + note + " Publish the record below, in place "
                     "of any SPF record the domain has (one record per domain).",
                     "\n".join(fixes))
    return Check("spf", Status.PASS, "; ".join(found) + "." + note)


def _record_problems(lookup: Lookup, domain: str, values: list[str],
                     relay: list[IpAddress]) -> list[str]:
    if not values:
        return ["no SPF record (a TXT record starting v=spf1)"]
    if len(values) > 1:
        return [f"{len(values)} SPF records, which receivers treat as an error "
                f"(permerror): {' | '.join(values)}"]
    try:
        record = parse_spf(values[0])
    except SpfSyntaxError as exc:
        return [f"the SPF record {values[0]!r} does not parse: {exc}"]
    problems = []
    ending = record.all_qualifier
    if ending is None and record.redirect:
        target = [v for v in lookup.txt(record.redirect) if is_spf(v)]
        try:
            ending = parse_spf(target[0]).all_qualifier if len(target) == 1 else None
        except SpfSyntaxError:
            ending = None
    if ending is None:
        problems.append(f"{values[0]!r} does not end in -all or ~all, so anyone may send as "
                        f"{domain} with a neutral result")
    elif ending in "+?":
        problems.append(f"{values[0]!r} ends in {ending}all, which lets anyone send as "
                        f"{domain}: it must end in -all or ~all")
    for address in relay:
        # One evaluation per address: the 10-lookup limit is per check_host(), not shared.
        outcome = _CheckHost(lookup).result(domain, address)
        if outcome != "pass":
            problems.append(f"the relay's address {address} is not authorized "
                            f"(SPF result: {outcome})")
    return problems


def _suggested(domain: str, values: list[str], relay: list[IpAddress]) -> str:
    """A record to publish in place of what is there: the relay's addresses, then whatever
    the present record(s) authorize (include:, ip4:, a, mx …), ending in -all (~all when
    the domain chose that); `a mx` when nothing better is known."""
    terms = [f"ip{address.version}:{address}" for address in relay]
    ending = "-all"
    for value in values:
        try:
            record = parse_spf(value)
        except SpfSyntaxError:
            continue
        if record.all_qualifier == "~":
            ending = "~all"
        kept = [t.text for t in record.terms if t.mechanism != "all"]
        if record.redirect:
            kept.append(f"include:{record.redirect}")
        terms += kept
    unique = list(dict.fromkeys(term.lstrip("+") for term in terms))
    return txt_record(domain, " ".join(["v=spf1", *(unique or ["a", "mx"]), ending]))

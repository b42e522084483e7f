"""DNS for the doctor: TXT, MX and address lookups through dnspython, asked only of the
servers in `[doctor] nameservers` (never the system's as a fallback, so a test's server on
127.0.0.1 sees every query), each within `[doctor] timeout`. "No such name" and "no such
record" are answers (an empty list); a server that does not answer is DnsUnreachable."""

from __future__ import annotations

import ipaddress
from typing import Any

import dns.exception
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver

from ainews_newsletter.errors import AinewsError, ConfigError

# A character-string in a TXT record holds at most 255 bytes (RFC 1035 3.3); longer values
# (a 2048-bit DKIM key) are published as several strings that readers join.
TXT_STRING_MAX = 255


class DnsUnreachable(AinewsError):
    """No DNS server answered in time (or every one refused): names the servers."""


def parse_nameserver(text: str) -> tuple[str, int]:
    """"host:port", "host", "[v6]:port" or a bare IPv6 address → (address, port). The host
    must be an IP address: resolving a server's name would need the system's DNS, which
    these settings exist to avoid."""
    text = text.strip()
    host, port = text, 53
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            port = _port(text, rest.removeprefix(":"))
    elif text.count(":") == 1:
        host, _, rest = text.partition(":")
        port = _port(text, rest)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(f"doctor.nameservers: {text!r} is not an IP address (with an "
                          "optional :port)") from None
    return host, port


def _port(text: str, value: str) -> int:
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise ConfigError(f"doctor.nameservers: {text!r} has no valid port")
    return int(value)


def quoted_txt(value: str) -> str:
    """A TXT value as zone-file text: quoted strings of at most 255 bytes, space-separated,
    ready to paste (`"v=DKIM1; k=rsa; p=MIIB…" "…"`). Values here are ASCII."""
    raw = value.encode("ascii")
    chunks = [raw[i:i + TXT_STRING_MAX] for i in range(0, len(raw), TXT_STRING_MAX)] or [b""]
    return " ".join('"' + chunk.decode("ascii").replace("\\", "\\\\").replace('"', '\\"') + '"'
                    for chunk in chunks)


def txt_record(owner: str, value: str) -> str:
    """One ready-to-paste zone line: `owner. TXT "…"`."""
    return f"{owner.rstrip('.')}. TXT {quoted_txt(value)}"


class Lookup:
    """The few queries the checks need. With `nameservers` (["host:port", …]) only those
    servers are asked; empty, the system's resolvers (/etc/resolv.conf)."""

    def __init__(self, nameservers: list[str], timeout: float) -> None:
        if nameservers:
            # configure=False: no /etc/resolv.conf, so no system server and no search
            # domain can sneak in beside the configured ones.
            self._resolver = dns.resolver.Resolver(configure=False)
            self._resolver.nameservers = [dns.nameserver.Do53Nameserver(host, port)
                                          for host, port in map(parse_nameserver,
                                                                nameservers)]
            self._servers = ", ".join(nameservers)
        else:
            try:
                self._resolver = dns.resolver.Resolver()
            except dns.resolver.NoResolverConfiguration:
                raise DnsUnreachable("no DNS server configured on this machine (empty "
                                     "/etc/resolv.conf); set [doctor] nameservers") from None
            self._servers = ", ".join(str(server) for server in self._resolver.nameservers)
        # lifetime bounds the whole query (all servers, all retries); timeout one attempt.
        self._resolver.lifetime = timeout
        self._resolver.timeout = timeout
        self._timeout = timeout

    def txt(self, name: str) -> list[str]:
        """Each TXT record's strings joined into one value (as SPF, DKIM and DMARC read
        them); bytes that are not UTF-8 are replaced, never fatal."""
        return [b"".join(rdata.strings).decode("utf-8", "replace")
                for rdata in self._query(name, "TXT")]

    def mx(self, name: str) -> list[str]:
        """Mail exchangers, most preferred first, without the final dot; a null MX
        (RFC 7505: "this domain takes no mail") is ".". """
        records = sorted(self._query(name, "MX"), key=lambda rdata: int(rdata.preference))
        return ["." if rdata.exchange == dns.name.root
                else rdata.exchange.to_text(omit_final_dot=True) for rdata in records]

    def addresses(self, name: str) -> list[str]:
        """The name's A and AAAA addresses (IPv4 first)."""
        return [rdata.address for rdtype in ("A", "AAAA") for rdata in self._query(name, rdtype)]

    def _query(self, name: str, rdtype: str) -> list[Any]:
        # Any: the record classes (TXT, MX, A) carry their fields untyped in dnspython.
        try:
            qname = dns.name.from_text(name.rstrip(".") + ".")
        except dns.exception.DNSException:
            return []  # a malformed name (a label over 63 bytes…) cannot exist: no records
        try:
            # tcp=False: UDP first; dnspython asks again over TCP when the answer comes back
            # truncated (a 2048-bit DKIM key does not fit the 512 bytes of plain UDP).
            answer = self._resolver.resolve(qname, rdtype, tcp=False, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except dns.resolver.LifetimeTimeout:
            raise DnsUnreachable(f"DNS did not answer: no reply from {self._servers} within "
                                 f"{self._timeout:g} s ({rdtype} {name})") from None
        except dns.resolver.NoNameservers as exc:
            raise DnsUnreachable(f"DNS did not answer: every server failed ({self._servers})"
                                 f" for {rdtype} {name}: {exc}") from None
        return list(answer)


def organizational_domain(domain: str) -> str:
    """The domain's last two labels (news.example.org → example.org). DMARC means the Public
    Suffix List's registrable domain; two labels is right for .org/.com/.de-style names and
    wrong for ones like example.co.uk, a cost accepted to keep a suffix list out of the
    project: alignment then merely looks stricter than receivers judge it."""
    labels = domain.lower().rstrip(".").split(".")
    return ".".join(labels[-2:])

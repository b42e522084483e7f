"""A small authoritative DNS server on 127.0.0.1 for the doctor's tests: dnslib's DNSServer
with a resolver over zones given as Python data, on one free port over UDP and TCP, each a
thread stopped when the test ends. Like a real server it answers plain (non-EDNS) UDP queries
with at most 512 bytes, setting TC on anything longer, so a long TXT record (a 4096-bit DKIM
key; a 2048-bit one alone just fits) has to be fetched again over TCP. A "silent" server takes
the packets and never answers, for timeouts.

Zones: {"example.org": [(name, type, value), …]}: name "@" is the zone's origin, a name ending
in "." is absolute, anything else is relative to the origin (so are MX and CNAME targets).
Types: A, AAAA, MX ("10 host"), CNAME, and TXT (a string, split into 255-byte strings as DNS
needs, or a tuple of strings published as given). A name outside every zone is REFUSED, an
unknown one in a zone NXDOMAIN."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from dnslib import AAAA, CNAME, MX, QTYPE, RCODE, RR, TXT, A, DNSHeader, DNSRecord
from dnslib.server import BaseResolver, DNSHandler, DNSLogger, DNSServer

from tests.peers import free_port

Value = str | tuple[str, ...]
Zones = dict[str, list[tuple[str, str, Value]]]
PLAIN_UDP_LIMIT = 512  # RFC 1035 4.2.1: UDP answers to queries without EDNS


@dataclass
class DnsPeer:
    port: int
    host: str = "127.0.0.1"
    # (name without final dot, type, "udp" or "tcp") per query, in order of arrival
    queries: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def nameserver(self) -> str:
        """As [doctor] nameservers takes it."""
        return f"{self.host}:{self.port}"


def _rdata(rtype: str, value: Value, origin: str) -> Any:
    if rtype == "TXT":
        if isinstance(value, tuple):
            return TXT(list(value))
        raw = value.encode()
        return TXT([raw[i:i + 255] for i in range(0, len(raw), 255)] or [b""])
    assert isinstance(value, str), f"{rtype} takes one string"
    if rtype == "MX":
        preference, host = value.split()
        return MX(_absolute(host, origin) + ".", int(preference))
    if rtype == "CNAME":
        return CNAME(_absolute(value, origin) + ".")
    return {"A": A, "AAAA": AAAA}[rtype](value)


def _absolute(name: str, origin: str) -> str:
    """Zone-file naming, without the final dot."""
    if name == "@":
        return origin
    return name.rstrip(".").lower() if name.endswith(".") else f"{name}.{origin}".lower()


class _ZoneResolver(BaseResolver):  # type: ignore[misc]
    def __init__(self, zones: Zones, queries: list[tuple[str, str, str]]) -> None:
        self.origins = [origin.rstrip(".").lower() for origin in zones]
        self.records: dict[str, list[Any]] = {}
        for origin, entries in zones.items():
            origin = origin.rstrip(".").lower()
            self.records.setdefault(origin, [])
            for name, rtype, value in entries:
                owner = _absolute(name, origin)
                record = RR(owner + ".", getattr(QTYPE, rtype),
                            rdata=_rdata(rtype, value, origin), ttl=300)
                self.records.setdefault(owner, []).append(record)
        self.queries = queries

    def resolve(self, request: Any, handler: Any) -> Any:
        reply = request.reply()
        qname = str(request.q.qname).rstrip(".").lower()
        self.queries.append((qname, QTYPE[request.q.qtype], handler.protocol))
        if not any(qname == o or qname.endswith("." + o) for o in self.origins):
            reply.header.rcode = RCODE.REFUSED
            reply.header.aa = 0
            return reply
        if qname not in self.records:
            reply.header.rcode = RCODE.NXDOMAIN
        for record in self.records.get(qname, []):
            if record.rtype == request.q.qtype or record.rtype == QTYPE.CNAME:
                reply.add_answer(record)
        return reply


class _Handler(DNSHandler):  # type: ignore[misc]
    """dnslib's handler never truncates unless told to, and then drops the question section,
    which dnspython (rightly) does not take as the answer to its query. A real server keeps
    the question, sets TC and drops the records when the answer is longer than the query
    allows: 512 bytes without EDNS, the OPT record's payload size with it."""

    def get_reply(self, data: bytes) -> bytes:
        request = DNSRecord.parse(data)
        reply = self.server.resolver.resolve(request, self)
        packed = bytes(reply.pack())
        if self.protocol == "udp":
            sizes = [opt.rclass for opt in request.ar if opt.rtype == QTYPE.OPT]
            if len(packed) > max([PLAIN_UDP_LIMIT, *sizes]):
                header = DNSHeader(id=reply.header.id, qr=1, aa=reply.header.aa, tc=1,
                                   rcode=reply.header.rcode)
                packed = bytes(DNSRecord(header, q=reply.q).pack())
        return packed


def _quiet() -> Any:
    return DNSLogger(logf=lambda _line: None)


@contextmanager
def running_dns(zones: Zones, *, silent: bool = False) -> Iterator[DnsPeer]:
    """Serve `zones` on 127.0.0.1 (UDP and TCP on one port) until the block ends. silent:
    bind the port over both and never answer (queries to it time out)."""
    if silent:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, socket.socket() as tcp:
            tcp.bind(("127.0.0.1", 0))
            tcp.listen(1)  # connections complete in the backlog and are never read
            port = int(tcp.getsockname()[1])
            udp.bind(("127.0.0.1", port))
            yield DnsPeer(port)
        return
    peer, servers = _start(zones)
    try:
        yield peer
    finally:
        for server in servers:
            server.server.shutdown()  # returns once serve_forever has left its loop
            server.server.server_close()
            server.thread.join()


def _start(zones: Zones) -> tuple[DnsPeer, list[Any]]:
    for _attempt in range(5):  # the free TCP port may be taken for UDP (or meanwhile)
        peer = DnsPeer(free_port())
        resolver = _ZoneResolver(zones, peer.queries)
        servers: list[Any] = []
        try:
            for tcp in (False, True):
                servers.append(DNSServer(resolver, address=peer.host, port=peer.port, tcp=tcp,
                                         logger=_quiet(), handler=_Handler))
        except OSError:
            for server in servers:
                server.server.server_close()
            continue
        for server in servers:
            server.thread = threading.Thread(target=server.server.serve_forever,
                                             kwargs={"poll_interval": 0.05}, daemon=True)
            server.thread.start()
        return peer, servers
    raise RuntimeError("no free port for the test DNS server on 127.0.0.1")


@pytest.fixture
def dns_peer() -> Iterator[Callable[..., DnsPeer]]:
    """A factory: dns_peer(zones) (or dns_peer({}, silent=True)) starts a server for this
    test; every server started is stopped when the test ends."""
    with ExitStack() as stack:

        def start(zones: Zones, *, silent: bool = False) -> DnsPeer:
            return stack.enter_context(running_dns(zones, silent=silent))

        yield start

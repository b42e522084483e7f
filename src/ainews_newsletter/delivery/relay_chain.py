"""Several relays in order ([[smtp.relays]]): each message goes through the first relay that
is up; a relay that stops answering passes its messages to the next, and is tried again
after [smtp] failback_seconds.

`Relays` is what one process knows of the relays during a send (which are down until when,
each relay's rate limit and error watch), shared by its connections;
`RelayChain` is one connection's transport, holding an SmtpTransport per relay it has used.

A relay's own `connections` caps how many of the send's connections use it at once: one
beyond the cap goes on to the next relay. A connection that finds every relay that is up
full has nothing to send through, and waiting for a place would not do (a connection keeps
its place while it lives, idle or not: a waiter could stall for the rest of the send, and
on PostgreSQL its claimed row would expire and go out twice). So it retires: it raises
ConnectionSurplus, its row goes back to the queue, and the connections that do have a
relay send it (thread_sender.py, process_sender.py). A place is held from the moment a
connection opens a transport to the relay until it lets it go (down, failback, the end).
With worker processes each process holds its share of every relay's places, rate and
quota (`RelayConnections.in_process`), so that together they hold.

The delivery guarantee is the one-relay sender's: a row is committed `sending` before its
first MAIL FROM, whichever relay that goes to. A message moves to the next relay only when
the relay it was offered to cannot have taken it:
- TransportUnavailable from SmtpTransport is raised only before DATA's payload went out
  (connection refused, TLS failure, a 4xx greeting, login refused, a 5xx to MAIL FROM, the
  connection lost before DATA); a connection lost after the payload is returned as a
  deferral instead, so it never reaches the next relay here;
- a 421 reply (to MAIL, RCPT, DATA or the final dot) is a refusal: RFC 5321 makes the reply
  to the final dot the server's word on whether it took the message, and 4xx says it did
  not.
So handing the same message to relay 2 makes no duplicate. A duplicate is possible only when
a connection is lost after the payload went out and before the reply came: that row is
recorded deferred and sent again later (through whichever relay is up then), the one
message in flight per connection the at-least-once contract allows, as with one relay."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ainews_newsletter.config import SmtpConfig
from ainews_newsletter.delivery.pacing import ErrorWatch, RateLimiter, SendPaused
from ainews_newsletter.delivery.provider_headers import ProviderHeaders, for_relay
from ainews_newsletter.delivery.transports import (
    ConnectionSurplus,
    SmtpTransport,
    Transport,
    TransportUnavailable,
)
from ainews_newsletter.models import SendOutcome


@dataclass(eq=False)
class RelayLink:
    """One relay as the connections of this process share it."""

    name: str
    settings: SmtpConfig
    limiter: RateLimiter
    watch: ErrorWatch
    # Its provider's metadata lines, put in place of the message's placeholder (provider_headers.py
    # `for_relay`); None: the placeholder is dropped.
    headers: ProviderHeaders | None = None
    # The relay's `connections` (None: no cap) and this process's share of them.
    connections: int | None = None
    places: int | None = None
    held: int = 0  # places this process's connections hold now
    down_until: float = 0.0  # monotonic; 0 = up
    reason: str = ""  # why it was last found down
    lock: threading.Lock = field(default_factory=threading.Lock)


class Relays:
    """The relays of one send, in order, as this process sees them."""

    def __init__(self, links: list[RelayLink], failback_seconds: float,
                 clock_: Callable[[], float] = time.monotonic) -> None:
        self.links = links
        self.failback_seconds = failback_seconds
        self._clock = clock_

    def is_up(self, link: RelayLink) -> bool:
        with link.lock:
            return link.down_until <= self._clock()

    def mark_down(self, link: RelayLink, reason: str) -> None:
        with link.lock:
            link.down_until = self._clock() + self.failback_seconds
            link.reason = reason
        link.watch.reset()  # back after failback with a clean count, not the old refusals

    def take_place(self, link: RelayLink) -> bool:
        """A place among `link`'s connections for one more; False when all are in use."""
        with link.lock:
            if link.places is not None and link.held >= link.places:
                return False
            link.held += 1
            return True

    def give_place(self, link: RelayLink) -> None:
        with link.lock:
            link.held -= 1

    def in_process(self, number: int, processes: int, connections: int) -> None:
        """In worker process `number` of `processes` (after the fork, before any transport):
        this process's share of every relay's rate and quota, and its places: the send's
        connections are numbered 0 … connections-1, process `number` holding every
        processes-th from `number` on (process_sender.py); each relay's places go to
        connection numbers in turn, relay after relay, and a process holds the places of
        its own numbers (so two relays allowing one each over two processes of one
        connection give each process one relay, not one process both)."""
        mine = set(range(number, connections, processes))
        offset = 0
        for link in self.links:
            settings = link.settings
            link.limiter = RateLimiter(settings.rate_per_second / processes,
                                       share_of(settings.max_per_hour, number, processes))
            if link.connections is not None:
                cap = min(link.connections, connections)
                numbers = {(offset + place) % connections for place in range(cap)}
                link.places = len(numbers & mine)
                offset += cap


def share_of(total: int, number: int, processes: int) -> int:
    """Process `number`'s part of `total` shared out over `processes`: the parts differ by
    one at most and add up to `total` (a quota of 5 over 2 processes is 2 and 3, not 2
    and 2)."""
    return total * (number + 1) // processes - total * number // processes


def relays_for_send(smtp: SmtpConfig, error_threshold: float, error_window: int) -> Relays:
    """The shared state of a send through [[smtp.relays]], as one process holds it."""
    links = []
    for relay in smtp.relays:
        links.append(RelayLink(
            relay.label, relay.smtp_settings(smtp),
            RateLimiter(relay.rate_per_second, relay.max_per_hour),
            ErrorWatch(error_threshold, error_window),
            ProviderHeaders.of(relay.provider, relay.provider_stream),
            connections=relay.connections, places=relay.connections))
    return Relays(links, smtp.failback_seconds)


class RelayConnections:
    """The connections' transport factory of one send: a RelayChain per connection, all
    sharing one Relays (per process: see `in_process`)."""

    def __init__(self, relays: Relays) -> None:
        self.relays = relays

    def __call__(self) -> Transport:
        return RelayChain(self.relays)

    def in_process(self, number: int, processes: int, connections: int) -> None:
        self.relays.in_process(number, processes, connections)


def processes_for_relays(smtp: SmtpConfig, processes: int) -> int:
    """At most as many worker processes as the smallest hourly quota can be shared out to,
    each getting at least one message an hour."""
    for relay in smtp.relays:
        if relay.max_per_hour:
            processes = min(processes, relay.max_per_hour)
    return max(1, processes)


class RelayChain:
    """One connection's transport over the relays, in order (see the module's comment)."""

    def __init__(self, relays: Relays,
                 make: Callable[[SmtpConfig], Transport] = SmtpTransport) -> None:
        self.relays = relays
        self._make = make
        self._open: dict[str, Transport] = {}  # relay name → its transport

    def describe(self) -> str:
        return "relays " + ", ".join(link.name for link in self.relays.links)

    def send(self, envelope_from: str, recipient: str, message: bytes) -> SendOutcome:
        skipped: list[str] = []
        full = False  # a relay up but with no place for this connection
        for link in self.relays.links:
            if not self.relays.is_up(link):
                self._let_go(link)
                skipped.append(f"{link.name}: {link.reason or 'down'}")
                continue
            transport = self._transport(link)
            if transport is None:
                full = True
                skipped.append(f"{link.name}: its connections ({link.connections}) "
                               "are all in use")
                continue
            if not link.limiter.take_within_quota():  # the per-second rate: a short wait
                self._let_go(link)
                skipped.append(f"{link.name}: its max_per_hour is used up")
                continue
            try:
                outcome = transport.send(envelope_from, recipient,
                                         for_relay(message, link.headers))
            except TransportUnavailable as exc:  # nothing handed over: the next relay
                self._fail(link, str(exc))
                skipped.append(f"{link.name}: {exc}")
                continue
            if outcome.code == 421:  # closing, the message refused: the next relay
                reason = f"answered {outcome.code} {outcome.reply}"
                self._fail(link, reason)
                skipped.append(f"{link.name}: {reason}")
                continue
            try:
                link.watch.record(outcome)
            except SendPaused as exc:  # this answer stands; the next messages go on
                self._fail(link, str(exc))
            self._let_go_after(link)
            return dataclasses.replace(outcome, relay=link.name)
        if full:  # the others send: this connection retires, its row goes back
            raise ConnectionSurplus(f"no relay has a place for another connection "
                                    f"({'; '.join(skipped)})")
        raise TransportUnavailable(f"every relay is down ({'; '.join(skipped)})")

    def _transport(self, link: RelayLink) -> Transport | None:
        """This connection's transport to `link`, taking a place among its connections
        first if it has none yet; None when every place is taken."""
        held = self._open.get(link.name)
        if held is None:
            if not self.relays.take_place(link):
                return None
            try:
                held = self._make(link.settings)
            except BaseException:
                self.relays.give_place(link)
                raise
            self._open[link.name] = held
        return held

    def _fail(self, link: RelayLink, reason: str) -> None:
        self.relays.mark_down(link, reason)
        self._let_go(link)

    def _let_go(self, link: RelayLink) -> None:
        """Close this connection's transport to `link`, if open."""
        transport = self._open.pop(link.name, None)
        if transport is not None:
            self.relays.give_place(link)
            transport.close()

    def _let_go_after(self, used: RelayLink) -> None:
        """Back on an earlier relay (failback): the later ones' connections are let go."""
        links = self.relays.links
        for link in links[links.index(used) + 1:]:
            self._let_go(link)

    def close(self) -> None:
        for link in self.relays.links:
            self._let_go(link)


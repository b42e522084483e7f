"""Several relays in order ([[smtp.relays]]): each message goes through the first relay that
is up; a relay that stops answering passes its messages to the next, and is tried again
after [smtp] failback_seconds.

`Relays` is what one process knows of the relays during a send (which are down until when,
each relay's rate limit and error watch), shared by its connections;
`RelayChain` is one connection's transport, holding an SmtpTransport per relay it has used.
[smtp] connections and workers apply to whichever relay is in use: a cap per relay would
leave a connection beyond it nothing to send through when the relays before are down.

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
from ainews_newsletter.delivery.transports import SmtpTransport, Transport, TransportUnavailable
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


def relays_for_send(smtp: SmtpConfig, error_threshold: float, error_window: int,
                    processes: int = 1) -> Relays:
    """The shared state of a send through [[smtp.relays]]. With `processes` > 1 (worker
    processes, each with its own copy of this state after the fork) every relay's rate and
    quota are shared out equally, so that together they hold."""
    links = []
    for relay in smtp.relays:
        links.append(RelayLink(
            relay.label, relay.smtp_settings(smtp),
            RateLimiter(relay.rate_per_second / processes, relay.max_per_hour // processes),
            ErrorWatch(error_threshold, error_window),
            ProviderHeaders.of(relay.provider, relay.provider_stream)))
    return Relays(links, smtp.failback_seconds)


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
        for link in self.relays.links:
            if not self.relays.is_up(link):
                self._let_go(link)
                skipped.append(f"{link.name}: {link.reason or 'down'}")
                continue
            if not link.limiter.take_within_quota():  # the per-second rate: a short wait
                self._let_go(link)
                skipped.append(f"{link.name}: its max_per_hour is used up")
                continue
            transport = self._transport(link)
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
        raise TransportUnavailable(f"every relay is down ({'; '.join(skipped)})")

    def _transport(self, link: RelayLink) -> Transport:
        held = self._open.get(link.name)
        if held is None:
            held = self._open[link.name] = self._make(link.settings)
        return held

    def _fail(self, link: RelayLink, reason: str) -> None:
        self.relays.mark_down(link, reason)
        self._let_go(link)

    def _let_go(self, link: RelayLink) -> None:
        """Close this connection's transport to `link`, if open."""
        transport = self._open.pop(link.name, None)
        if transport is not None:
            transport.close()

    def _let_go_after(self, used: RelayLink) -> None:
        """Back on an earlier relay (failback): the later ones' connections are let go."""
        links = self.relays.links
        for link in links[links.index(used) + 1:]:
            self._let_go(link)

    def close(self) -> None:
        for link in self.relays.links:
            self._let_go(link)


"""A send through several relays ([[smtp.relays]]): the relays' shared state made once per
send, before any worker process is forked, and the pacing the send itself keeps then (each
relay keeps its own: relay_chain.py)."""

from __future__ import annotations

from collections.abc import Callable

from ainews_newsletter.config import Config
from ainews_newsletter.delivery.provider_headers import ProviderHeaders
from ainews_newsletter.delivery.relay_chain import (
    RelayChain,
    RelayConnections,
    processes_for_relays,
    relays_for_send,
)
from ainews_newsletter.delivery.transports import Transport

# An error_threshold no share of refusals reaches: with several relays each relay's own
# watch moves its messages to the next relay, and the send stops only when all are down.
NEVER_PAUSES = 2.0


def relay_chain(config: Config) -> RelayChain:
    """One connection over the relays, alone (a test copy, a confirmation mail)."""
    return RelayChain(relays_for_send(config.smtp, config.delivery.error_threshold,
                                      config.delivery.error_window))


def relay_transports(config: Config,
                     workers: int) -> tuple[Callable[[], Transport], int, int]:
    """The connections' transport factory for a send through the relays, the worker
    processes it runs in (no more than every relay's limits can be shared out to), and the
    connections: [smtp] connections, or fewer when every relay has a cap and together they
    allow fewer (a connection beyond them all would only retire at once)."""
    smtp = config.smtp
    connections = smtp.connections
    caps = [relay.connections for relay in smtp.relays]
    if all(cap is not None for cap in caps):
        connections = min(connections, sum(cap for cap in caps if cap is not None))
    workers = processes_for_relays(smtp, min(workers, connections))
    shared = relays_for_send(smtp, config.delivery.error_threshold,
                             config.delivery.error_window)
    return RelayConnections(shared), workers, connections


def send_pacing(config: Config) -> tuple[float, int, float]:
    """(rate_per_second, max_per_hour, error_threshold) of the send as a whole: [smtp]'s
    and [delivery]'s for one relay; with several, none (each relay keeps its own)."""
    if config.smtp.relays and config.delivery.backend == "smtp":
        return 0.0, 0, NEVER_PAUSES
    return (config.smtp.rate_per_second, config.smtp.max_per_hour,
            config.delivery.error_threshold)


def message_provider(config: Config) -> ProviderHeaders | None:
    """The relay provider lines messages are built with: [smtp] provider's for one relay;
    through [[smtp.relays]] a placeholder that each relay turns into its own provider's
    lines or drops (relay_chain.py), or none when no relay names a provider."""
    smtp = config.smtp
    if smtp.relays and config.delivery.backend == "smtp":
        if any(relay.provider != "none" for relay in smtp.relays):
            return ProviderHeaders.relay_placeholder()
        return None
    return ProviderHeaders.of(smtp.provider, smtp.provider_stream)

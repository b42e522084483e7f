"""One reader's message on its way: built from the issue's skeleton, signed, handed to a
transport with the reader's own return path. The same steps run in a sender thread and in
a worker process (worker_process.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from email.errors import MessageError

from ainews_newsletter import clock
from ainews_newsletter.delivery.claims import Delivery
from ainews_newsletter.delivery.dkim import Signer
from ainews_newsletter.delivery.message import IssueMessages
from ainews_newsletter.delivery.returnpath import verp_address
from ainews_newsletter.delivery.transports import Transport
from ainews_newsletter.errors import DeliveryError
from ainews_newsletter.models import DeliveryState, SendOutcome


@dataclass(frozen=True)
class Outgoing:
    messages: IssueMessages  # built once per send: one MIME boundary, Date per message
    sender: str  # [newsletter] from: the envelope sender without VERP
    signer: Signer | None = None  # DKIM
    # (bounce address, delimiter): each message's envelope sender becomes its VERP address.
    verp: tuple[str, str] | None = None
    # The issue's renderings in its readers' other languages, each with its own skeleton
    # (one per language, never per reader); a row's language picks one, None or an
    # unknown one the issue's own `messages`.
    editions: Mapping[str, IssueMessages] = field(default_factory=dict)

    def messages_for(self, delivery: Delivery) -> IssueMessages:
        language = delivery.recipient.language
        return self.messages if language is None else self.editions.get(language,
                                                                         self.messages)

    def envelope_sender(self, delivery: Delivery) -> str:
        if self.verp is None or delivery.return_tag is None:  # rows snapshotted before 0004
            return self.sender
        return verp_address(self.verp[0], self.verp[1], delivery.return_tag)

    def build(self, delivery: Delivery) -> bytes | SendOutcome:
        """The message as it goes out, or the failure that keeps it from being built."""
        try:
            message = self.messages_for(delivery).bytes_for(
                delivery.recipient, clock.now(), delivery.id, delivery.return_tag)
            if self.signer is not None:
                message = self.signer(message)
        except (MessageError, ValueError, UnicodeError, DeliveryError) as exc:
            # One unbuildable message (a stored address from before validation tightened,
            # say) must not stop the send for everyone after it.
            return SendOutcome(DeliveryState.FAILED, 0, f"could not build the message: {exc}")
        return message

    def hand_over(self, transport: Transport, delivery: Delivery,
                  built: bytes | SendOutcome) -> SendOutcome:
        """Give a built message to the transport. TransportUnavailable passes through: the
        caller puts the row back."""
        if isinstance(built, SendOutcome):
            return built
        return transport.send(self.envelope_sender(delivery), delivery.recipient.email, built)

    def send(self, transport: Transport, delivery: Delivery) -> SendOutcome:
        return self.hand_over(transport, delivery, self.build(delivery))

"""[privacy]: what is kept about readers and for how long (consent records, the ledger's and
the feedback events' details). See docs/privacy.md."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ainews_newsletter.config.base import Section


class PrivacyConfig(Section):
    store_ip: Literal["none", "truncated", "full"] = Field(
        default="truncated",
        description='The IP address kept with a web sign-up\'s consent record: "none", '
                    '"truncated" (the network: /24 of an IPv4 address, /48 of an IPv6 one) '
                    'or "full".')
    store_user_agent: bool = Field(
        default=False,
        description="Keep the browser's user agent with a web sign-up's consent record.")
    keep_feedback_details_days: int = Field(
        default=30, ge=1, le=3650,
        description="After this many days a bounce or complaint keeps its counts but not its "
                    "diagnostic and source text (which may name a person), and mail kept in "
                    "the IMAP processed folder is deleted; applied daily by the scheduler and "
                    "by `ainews db prune`.")
    keep_addresses_in_ledger_days: int = Field(
        default=400, ge=1, le=36500,
        description="After this many days the delivery ledger keeps a keyed hash of each "
                    "address instead of the address and name (reports keep their counts); "
                    "applied daily by the scheduler and by `ainews db prune`.")

"""Status + the server's words + the DSN Action → FeedbackKind, with Sisimai's semantics:
`hard` only when the address (or its domain) does not exist, because that is the only failure
that will never fix itself; a full mailbox, a block, a spam verdict or a policy rejection is
`soft` even with a 5.x.x code. Words win over codes: servers put 5.1.1 on "mailbox full" and
"rate limited" replies, and a bare 5.0.0 on "user unknown"."""

from __future__ import annotations

import functools
import re

from ainews_newsletter.feedback.findings import FeedbackKind

# The address or its domain does not exist (Sisimai's userunknown, hostunknown, hasmoved,
# notaccept).
_HARD = re.compile("|".join([
    r"user(?:name)? unknown", r"unknown (?:user|recipient|local[- ]part|address|mailbox)",
    r"no such (?:user|mailbox|recipient|address|account|person|domain|local user)",
    r"(?:user|mailbox|recipient|address|account|addressee)s? (?:is |was )?(?:not found|unknown)",
    r"(?:does not|doesn'?t|did not|not) exists?\b", r"no longer (?:exists|active|valid)",
    r"invalid (?:recipient|mailbox|address|user)", r"not a valid (?:user|mailbox|recipient)",
    r"recipient ?not ?found", r"recipientnotfound", r"unknown or illegal alias",
    r"no mailbox (?:here|by that name)", r"sorry, no mailbox", r"mailbox not found",
    r"mailbox unavailable", r"mailbox (?:does not|doesn't) exist", r"unrouteable address",
    r"host (?:or domain name )?(?:not found|unknown)", r"unknown host", r"domain (?:not found|"
    r"does not exist|is not valid|unknown)", r"name or service not known",
    r"has moved", r"address (?:has )?changed", r"does not accept (?:any )?mail", r"null mx",
    r"no valid recipients", r"address rejected(?!:)",
    r"address rejected: access denied", r"host \S+ not found",
    r"no mx (?:record|found)", r"indicated no smtp service", r"not listed in",
    r"check (?:if|that) (?:the )?address is correct", r"domain (?:is )?not reachable",
    r"unknown address", r"addressee unknown", r"not our customer",
    r"user (?:does not|doesn't) have an? (?:\S+ )?account", r"no account by that name",
    r"there is no one at this address", r"invalid-recipient", r"non-?existent",
    r"email account that you tried to reach",
    # Japanese carriers and Notes/Domino: "does not exist", "not found", "not in the directory"
    r"存在しません", r"存在しない", r"見つかりません", r"リストにありません", r"宛先不明",
]), re.IGNORECASE)

# Failures that say why the address works but refused this message.
_SOFT = re.compile("|".join([
    r"mailbox (?:is )?full", r"quota", r"over ?quota", r"storage", r"insufficient",
    r"mailbox size", r"exceed", r"too (?:big|large|many|much)", r"size limit",
    r"spam", r"virus", r"malware", r"block(?:ed|list|ing)?\b", r"black ?list", r"blacklisted",
    r"reputation", r"policy", r"filter", r"suspend", r"disabled", r"inactive", r"deactivated",
    r"expired", r"timed? ?out", r"rate limit", r"relay(?:ing)? (?:denied|not permitted|access)",
    r"dmarc", r"\bspf\b", r"dkim", r"\bptr\b", r"reverse dns", r"not authori[sz]ed",
    r"authentication", r"content", r"rejected by the domain", r"temporar", r"try again",
    r"connection (?:refused|reset|timed)", r"frozen", r"retry time", r"not accepting",
    r"message rejected", r"unsolicited", r"security", r"refused", r"sender address",
    r"domain of sender", r"permission", r"name service error", r"name server",
    r"media error", r"mailer error", r"relaying", r"on hold",
    r"一杯", r"容量", r"満杯", r"拒否",  # Japanese carriers: (mailbox) full, capacity, refused
]), re.IGNORECASE)

# Sisimai's own codes (5.0.911 userunknown …) and the standard "no such address" codes.
_HARD_STATUS = re.compile(r"^[45]\.(?:1\.(?:1|2|6|10)|0\.91[12]|0\.932)$|^5\.4\.4$")


def classify(status: str, diagnostic: str, action: str = "", context: str = "") -> FeedbackKind:
    """The fate of one recipient. `diagnostic` is the server's words about this recipient;
    `context` (the whole notification and its subject) is read only when those words decide
    nothing, and to tell when the server said no only after receiving the message."""
    action = action.lower()
    if action in ("delayed", "delivered", "relayed", "expanded"):
        return FeedbackKind.OTHER
    if status.startswith("2.") and action != "failed":
        return FeedbackKind.OTHER
    if status.startswith("5.7.") and words_kind(diagnostic, status) is not FeedbackKind.SOFT \
            and not re.search(r"invalid recipient|no such user", diagnostic, re.IGNORECASE):
        # X.7.X is "security or policy" (RFC 3463): a policy refusal phrased as "unknown".
        return FeedbackKind.SOFT
    decided = words_kind(diagnostic, status)
    if decided is None and not _HARD_STATUS.match(status) and not status.startswith("4."):
        # The notice around the address speaks when the address line is silent; not for a
        # 4xx code, which is temporary unless its own words say otherwise.
        decided = _decide(*_notice_words(context)[:2], status)
    if decided is FeedbackKind.HARD and (_after_data(diagnostic) or _notice_words(context)[2]) \
            and not status.startswith(("5.1.", "4.1.")):
        # A server that took RCPT TO and refused only after seeing the message knows the
        # address: "unknown user" at that point is a content filter wearing a disguise.
        return FeedbackKind.SOFT
    if decided is not None:
        return decided
    return FeedbackKind.HARD if _HARD_STATUS.match(status) else FeedbackKind.SOFT


def words_kind(words: str, status: str = "") -> FeedbackKind | None:
    """HARD or SOFT when the words say why, None when they don't."""
    if not words:
        return None
    return _decide(_found(_HARD, words), _found(_SOFT, words), status)


@functools.lru_cache(maxsize=1)
def _notice_words(context: str) -> tuple[str | None, str | None, bool]:
    """The notice's first hard and soft words, and whether it says the refusal came after
    DATA. Read once per notice, not once per recipient: a report can list thousands of
    recipients, and the notice can be megabytes."""
    return _found(_HARD, context), _found(_SOFT, context), _after_data(context)


def _found(pattern: re.Pattern[str], words: str) -> str | None:
    match = pattern.search(words)
    return match.group(0) if match else None


def _decide(hard: str | None, soft: str | None, status: str) -> FeedbackKind | None:
    if hard is not None and _NOT_ACCEPT.search(hard) and status.startswith("4."):
        return FeedbackKind.SOFT
    if soft is not None and not (hard is not None and soft.lower() in _WEAK_SOFT):
        return FeedbackKind.SOFT
    if hard is not None:
        return FeedbackKind.HARD
    return None


# Domain-level "does not exist" answers come from DNS, which fails transiently too: on a 4xx
# status they are worth another try.
_NOT_ACCEPT = re.compile(r"mx|smtp service|accept|domain|host|name or service", re.IGNORECASE)
# Soft words that, next to a "no such user", only say how the server refused.
_WEAK_SOFT = {"refused", "message rejected", "content", "policy", "security", "filter",
              "timed out", "timeout", "time out", "try again", "temporar", "name service error",
              "name server"}
_AFTER_DATA = re.compile(r">>> DATA|end of DATA|after end of data|in reply to DATA",
                         re.IGNORECASE)


def _after_data(text: str) -> bool:
    return bool(_AFTER_DATA.search(text))


def worst(kinds: list[FeedbackKind]) -> FeedbackKind:
    """The message's verdict: hard > soft > complaint > autoreply > other."""
    order = [FeedbackKind.HARD, FeedbackKind.SOFT, FeedbackKind.COMPLAINT,
             FeedbackKind.AUTOREPLY, FeedbackKind.OTHER]
    for kind in order:
        if kind in kinds:
            return kind
    return FeedbackKind.OTHER

"""Which language someone gets, by BCP 47 tag (issue 30): the one fallback rule for the
mails, the public pages and the welcome (`closest`, `edition_for`), and the browser's
Accept-Language (`negotiate`). Pure string work on tags, no catalogs: a leaf."""

from __future__ import annotations

from collections.abc import Collection

# An Accept-Language header longer than this is read only this far (a browser sends < 100).
_ACCEPT_CHARS = 512
_ACCEPT_ITEMS = 24


def parse_accept_language(header: str) -> list[str]:
    """The tags of an Accept-Language header, most wanted first (q=0 dropped, "*" skipped).
    Bounded: a header of any length costs the same."""
    weighted: list[tuple[float, int, str]] = []
    for index, item in enumerate(header[:_ACCEPT_CHARS].split(",")[:_ACCEPT_ITEMS]):
        tag, _, params = item.strip().partition(";")
        tag = tag.strip()
        if not tag or tag == "*" or len(tag) > 35:
            continue
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0:
            weighted.append((-quality, index, tag))
    return [tag for _, _, tag in sorted(weighted)]


def closest(tag: str | None, available: Collection[str]) -> str | None:
    """The one of `available` that someone asking for `tag` gets, spelled as `available`
    spells it: the same tag in any case ("DE", "pt_BR"); else the tag cut back one subtag at
    a time, as RFC 4647's lookup does ("zh-Hant-TW" finds "zh-Hant" before "zh", "de-AT"
    finds "de"); else another region of the same language ("pt" and "pt-PT" find "pt-BR";
    the alphabetically first), but never across scripts ("zh-Hant" does not read "zh-Hans");
    None when nothing fits. The one rule for mails, pages and the welcome alike."""
    if not tag or len(tag) > 35:
        return None
    if tag in available:  # the common case, once per row of a send's snapshot
        return tag
    by_lower = {candidate.lower(): candidate for candidate in available}
    subtags = tag.strip().lower().replace("_", "-").split("-")
    for length in range(len(subtags), 0, -1):
        found = by_lower.get("-".join(subtags[:length]))
        if found is not None:
            return found
    script = _script("-".join(subtags))
    relatives = [candidate for lowered, candidate in by_lower.items()
                 if lowered.split("-")[0] == subtags[0]
                 and _script(lowered) in (None, script)]
    return min(relatives, key=str.lower) if relatives else None


def _script(lowered: str) -> str | None:
    """A tag's script subtag ("hant" in "zh-hant-tw"), if it names one."""
    return next((part for part in lowered.split("-")[1:] if len(part) == 4 and part.isalpha()),
                None)


def edition_for(tag: str | None, own: str, others: Collection[str]) -> str | None:
    """Which of an issue's further renderings (`others`) a reader of language `tag` gets,
    or None for the issue's own (in `own`): `closest` over all of them, so a reader of the
    issue's own language (or its nearest) is never handed a neighbour's rendering."""
    chosen = closest(tag, (own, *others))
    return None if chosen is None or chosen == own else chosen


def negotiate(header: str | None, available: Collection[str]) -> str | None:
    """The best of `available` for an Accept-Language header (each tag as `closest` reads
    it, most wanted first), or None when nothing fits."""
    if not header:
        return None
    for wanted in parse_accept_language(header):
        found = closest(wanted, available)
        if found is not None:
            return found
    return None

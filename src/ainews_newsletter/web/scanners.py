"""Requests that look like a link scanner's rather than a person's, for `[subscribers]
confirm_on_click`: such a request gets the confirmation page's button instead of confirming.

Mail security services open the links of a message before (or instead of) its reader, to
look for malware and phishing: Microsoft Defender for Office 365 (Safe Links), Proofpoint
URL Defense, Mimecast URL Protect, Barracuda Link Protection, Symantec/Broadcom Email
Security.cloud, Trend Micro Email Security, Gmail's own checks; and chat apps fetch a link
pasted into them for a preview. If such a fetch confirmed, a bot signing up a stranger
at a protected company would get them subscribed with nobody clicking. Four signs, any one
enough:

- a HEAD request (browsers navigate with GET; scanners often probe with HEAD);
- a user agent naming a scanner or a preview fetcher (SCANNER_AGENTS), or none at all (every
  browser sends one), or a prefetch (Purpose / Sec-Purpose: prefetch);
- Fetch Metadata that says this is not a navigation: Sec-Fetch-Site present, Sec-Fetch-Mode
  not "navigate" (a person opening a link navigates; a script's fetch does not). Browsers
  that send no Fetch Metadata at all (older Safari) are not marked by it;
- a GET within FIRST_SECONDS of the link's issue: a scanner fetches as the mail arrives; a
  person needs longer to open the mail and click.

Many scanners present an ordinary browser's user agent, which is why the time rule exists;
a scanner that waits longer and pretends to be a browser still gets through, the price of
`confirm_on_click` (docs/signup-forms.md). The button page never confirms by itself."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

FIRST_SECONDS = 10.0

# Lower-case parts of User-Agent headers seen from link scanners and preview fetchers. Kept
# here, in one place; the vendors change them without notice, so this is a net, not a wall.
SCANNER_AGENTS = (
    # Microsoft: Safe Links and Outlook.com previews, Office apps probing a link, Skype/Teams
    "bingpreview", "bingbot", "microsoft office", "ms-office", "skypeuripreview",
    "safelinks",
    "proofpoint",  # Proofpoint URL Defense / Targeted Attack Protection
    "mimecast",  # Mimecast URL Protect
    "barracuda",  # Barracuda Link Protection / Sentinel
    "symantec", "broadcom", "messagelabs",  # Symantec (Broadcom) Email Security.cloud
    "trend micro", "trendmicro",  # Trend Micro Email Security
    "google-safety", "googlebot",  # Gmail's link checks, Google's crawler
    "ironport",  # Cisco Secure Email (IronPort)
    "fortiguard", "forcepoint", "sophos", "zscaler",  # gateways that rewrite links
    # Chat apps' previews: a link pasted into a chat is not its owner clicking
    "slackbot", "discordbot", "telegrambot", "twitterbot", "linkedinbot",
    "facebookexternalhit", "whatsapp", "applebot",
    # Scripts and headless browsers (sandboxes that open links)
    "headlesschrome", "phantomjs", "python-requests", "python-urllib", "curl/", "wget/",
    "go-http-client", "okhttp", "libwww-perl", "java/", "crawler", "spider",
)


def link_scanner(method: str, headers: Mapping[str, str], issued_at: datetime,
                 now: datetime) -> str | None:
    """Why this request to a confirmation link looks like a scanner's, or None for what
    looks like a person. `headers` as Starlette gives them (case-insensitive)."""
    if method.upper() == "HEAD":
        return "a HEAD request"
    agent = (headers.get("user-agent") or "").strip().lower()
    if not agent:
        return "no user agent"
    for part in SCANNER_AGENTS:
        if part in agent:
            return f"user agent {part!r}"
    purpose = f"{headers.get('sec-purpose') or ''} {headers.get('purpose') or ''}".lower()
    if "prefetch" in purpose:
        return "a prefetch"
    mode = (headers.get("sec-fetch-mode") or "").strip().lower()
    if headers.get("sec-fetch-site") is not None and mode != "navigate":
        return f"not a navigation (Sec-Fetch-Mode {mode[:20]!r})"
    age = (now - issued_at).total_seconds()
    if age < FIRST_SECONDS:
        return f"opened {max(age, 0):.0f} s after the mail left"
    return None

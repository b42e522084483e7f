"""The `dmarc` check: the From domain (else its organizational domain) publishes one DMARC
record that parses, and SPF or DKIM aligns with the From domain, as receivers will judge it.
Gmail and Yahoo require a DMARC record from bulk senders since 2024."""

from __future__ import annotations

from dataclasses import dataclass

from ainews_newsletter.doctor.checks import Check, Status
from ainews_newsletter.doctor.dns import Lookup, organizational_domain, txt_record

POLICIES = ("none", "quarantine", "reject")


class DmarcSyntaxError(ValueError):
    """The record does not parse: receivers then apply no DMARC at all."""


@dataclass(frozen=True)
class DmarcRecord:
    policy: str
    subdomain_policy: str | None
    adkim: str  # r(elaxed) or s(trict)
    aspf: str
    rua: str | None


def is_dmarc(value: str) -> bool:
    return value.replace(" ", "").lower().startswith("v=dmarc1")


def parse_dmarc(value: str) -> DmarcRecord:
    tags: dict[str, str] = {}
    parts = [part.strip() for part in value.split(";") if part.strip()]
    for index, part in enumerate(parts):
        name, equals, argument = part.partition("=")
        name, argument = name.strip().lower(), argument.strip()
        if not equals or not name:
            raise DmarcSyntaxError(f"{part!r} is not a tag=value pair")
        if name in tags:
            raise DmarcSyntaxError(f"{name}= appears twice")
        if index == 0 and (name, argument) != ("v", "DMARC1"):
            raise DmarcSyntaxError("it does not start with v=DMARC1")
        tags[name] = argument
    for name, allowed in (("p", POLICIES), ("sp", POLICIES), ("adkim", ("r", "s")),
                          ("aspf", ("r", "s"))):
        if name in tags and tags[name].lower() not in allowed:
            raise DmarcSyntaxError(f"{name}={tags[name]} is not one of {', '.join(allowed)}")
    if "p" not in tags:
        raise DmarcSyntaxError("the required p= (none, quarantine or reject) is missing")
    pct = tags.get("pct", "100")
    if not pct.isdigit() or int(pct) > 100:
        raise DmarcSyntaxError(f"pct={pct} is not a number from 0 to 100")
    sub = tags.get("sp")
    return DmarcRecord(tags["p"].lower(), sub.lower() if sub else None,
                       tags.get("adkim", "r").lower(), tags.get("aspf", "r").lower(),
                       tags.get("rua"))


def aligned(domain: str, from_domain: str, mode: str) -> bool:
    """DMARC identifier alignment: strict is the same name; relaxed the same organizational
    domain (see organizational_domain for how that is reckoned)."""
    domain, from_domain = domain.lower().rstrip("."), from_domain.lower().rstrip(".")
    if mode == "s":
        return domain == from_domain
    return organizational_domain(domain) == organizational_domain(from_domain)


def check_dmarc(lookup: Lookup, from_domain: str, spf_domains_ok: bool,
                dkim_domain: str | None, envelope_domain: str | None = None) -> Check:
    """`spf_domains_ok`: the spf check passed; `dkim_domain`: the d= of a signature that
    verifies against DNS (None when DKIM is not set or its check failed);
    `envelope_domain`: the envelope sender's ([bounces] address) domain, which SPF judges
    (None: the From domain, as then the envelope sender is the From address).
    Raises DnsUnreachable when DNS does not answer."""
    from_domain = from_domain.lower().rstrip(".")
    org = organizational_domain(from_domain)
    starter = txt_record(f"_dmarc.{from_domain}", f"v=DMARC1; p=none; rua=mailto:dmarc@{org}")
    where, values = f"_dmarc.{from_domain}", []
    for domain in dict.fromkeys([from_domain, org]):
        where = f"_dmarc.{domain}"
        values = [value for value in lookup.txt(where) if is_dmarc(value)]
        if values:
            break
    looked = " or ".join(dict.fromkeys([f"_dmarc.{from_domain}", f"_dmarc.{org}"]))
    if not values:
        return Check("dmarc", Status.FAIL,
                     f"No DMARC record at {looked}: Gmail and Yahoo require one from bulk "
                     "senders. Start with p=none (reports only) and tighten it once the "
                     "reports sent to rua show only your own mail.", starter)
    if len(values) > 1:
        return Check("dmarc", Status.FAIL,
                     f"{where} has {len(values)} DMARC records, so receivers apply none: "
                     f"{' | '.join(values)}. Keep one.", starter)
    try:
        record = parse_dmarc(values[0])
    except DmarcSyntaxError as exc:
        return Check("dmarc", Status.FAIL, f"The DMARC record at {where} ({values[0]!r}) does "
                     f"not parse: {exc}. Receivers ignore it.", starter)
    # A record found at the organizational domain governs the From subdomain with sp=.
    policy = record.policy if where == f"_dmarc.{from_domain}" else (
        record.subdomain_policy or record.policy)
    passing = []
    if dkim_domain and aligned(dkim_domain, from_domain, record.adkim):
        passing.append(f"DKIM (d={dkim_domain})")
    envelope = (envelope_domain or from_domain).lower().rstrip(".")
    if spf_domains_ok and aligned(envelope, from_domain, record.aspf):
        passing.append(f"SPF ({envelope})")
    found = f"{where}: {values[0]} (policy for {from_domain}: p={policy})."
    if passing:
        monitor = (" p=none only asks for reports; move to quarantine once they show only your "
                   "own mail." if policy == "none" else "")
        return Check("dmarc", Status.PASS, f"{found} Aligned: {', '.join(passing)}.{monitor}")
    fix = [f"Sign with d={from_domain} or under {org}: set [dkim] domain and publish its key "
           "(see the dkim check)", f"or send with a [bounces] address under {org} whose SPF "
           "record passes (see the spf check)."]
    detail = (f"{found} Neither DKIM nor SPF aligns with the From domain {from_domain}"
              f" (DKIM d={dkim_domain or 'none'}, SPF {envelope}"
              f"{'' if spf_domains_ok else ' failing'}), so every message fails DMARC")
    if policy in ("quarantine", "reject"):
        keep = txt_record(where, f"v=DMARC1; p=none; rua={record.rua or f'mailto:dmarc@{org}'}")
        done = {"quarantine": "quarantined", "reject": "rejected"}[policy]
        return Check("dmarc", Status.FAIL, f"{detail} and is {done}.",
                     "\n".join([*fix, "Until one aligns, this record asks receivers for "
                                f"reports instead of having mail {done}:", keep]))
    return Check("dmarc", Status.WARN, f"{detail}; with p=none it is still delivered, but "
                 "Gmail and Yahoo want bulk mail to pass DMARC.", "\n".join(fix))

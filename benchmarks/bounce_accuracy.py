"""Bounce parsing accuracy on the real corpus, against flufl.bounce alone, in one run.

    python benchmarks/bounce_accuracy.py [--corpus DIR] [--misses]

DIR is ../shared/corpora/bounces by default (SHARED_CORPORA/bounces when that is set). The
Sisimai part (eml/, eml-crlf/, eml-cr/, not-bounce/ and expected.tsv) and flanker/ (its own
expected.tsv) are read; each message is parsed by `parse_message` and, separately, given to
`flufl.bounce.all_failures`. Per expected kind it prints: messages, kind right (ours),
recipient found (ours, over hard/soft rows), and for flufl: bounce detected (either set
non-empty) and recipient found. flufl cannot tell hard from soft (its "permanent" covers
both), so it gets no kind column; its false positives (a non-bounce taken for a bounce) are
counted apart. --misses lists every message we get wrong."""

from __future__ import annotations

import argparse
import csv
import email
import os
import re
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from flufl.bounce import all_failures  # noqa: E402

from ainews_newsletter.errors import FeedbackError  # noqa: E402
from ainews_newsletter.feedback.mailfile import MailItem, read_mail  # noqa: E402
from ainews_newsletter.feedback.parse import parse_message  # noqa: E402

KIND_ORDER = ["hard", "soft", "complaint", "autoreply", "other"]
SEVERITY = {"hard": 0, "soft": 1, "complaint": 2, "autoreply": 3, "other": 4}
# flanker's labels → the contract's kinds ("bounce" is a failure whose hard/soft flanker
# does not say: either counts as right).
FLANKER_KIND = {"bounce": "failure", "bounce (broken)": "failure",
                "bounce (plain text)": "failure", "bounce (broken MIME)": "failure",
                "delay notification (not a bounce yet)": "other", "complaint (ARF)": "complaint"}


@dataclass
class Case:
    key: str  # "eml/x.eml:1"
    path: Path
    number: int
    kind: str  # hard/soft/complaint/autoreply/other, or "failure" (flanker: hard or soft)
    recipients: list[str] = field(default_factory=list)  # rows' failed recipients (hard/soft)


def load_cases(root: Path) -> list[Case]:
    cases: dict[str, Case] = {}
    with (root / "expected.tsv").open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            if row["file"].startswith("mbox/"):
                continue
            key = f"{row['file']}:{row['message']}"
            case = cases.setdefault(key, Case(key, root / row["file"], int(row["message"]),
                                              row["kind"]))
            if SEVERITY[row["kind"]] < SEVERITY[case.kind]:
                case.kind = row["kind"]  # a message's kind is its worst row's
            if row["kind"] in ("hard", "soft") and row["recipient"]:
                case.recipients.append(row["recipient"].lower())
    flanker = root / "flanker" / "expected.tsv"
    if flanker.exists():
        with flanker.open(encoding="utf-8") as handle:
            for row in csv.DictReader(handle, delimiter="\t"):
                fields = row["fields read from the file itself (not a test expectation)"]
                kind = FLANKER_KIND[row["kind"]]
                wanted = [w for w in fields.replace(";", " ").split() if "@" in w]
                recipient = ([w.strip("<>,").lower() for w in wanted[:1]]
                             if kind == "failure" else [])
                if row["file"] == "office365.eml":
                    recipient = ["noname@example.com"]
                key = f"flanker/{row['file']}:1"
                cases[key] = Case(key, root / "flanker" / row["file"], 1, kind, recipient)
    return list(cases.values())


def messages_of(path: Path) -> list[bytes]:
    return [item.raw for item in read_mail([os.fspath(path)]) if isinstance(item, MailItem)]


# A delay notice (RFC 3464 Action: delayed, or a "delayed"/"warning" subject): Sisimai files
# these as soft bounces, the contract as `other` (nothing failed yet). Read from the raw
# message, not from our parser, so the adjustment cannot flatter it.
DELAY_NOTICE = re.compile(rb"^Action:\s*delayed|^Subject:.*(?:\bdelay|warning)",
                          re.IGNORECASE | re.MULTILINE)


def contract_kind(expected: str, raw: bytes) -> str:
    return "other" if expected == "soft" and DELAY_NOTICE.search(raw) else expected


def kind_matches(expected: str, got: str) -> bool:
    return got in ("hard", "soft") if expected == "failure" else got == expected


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(os.environ.get("SHARED_CORPORA") or REPO.parent / "shared" / "corpora")
    parser.add_argument("--corpus", type=Path, default=default / "bounces")
    parser.add_argument("--misses", action="store_true")
    args = parser.parse_args()
    if not (args.corpus / "expected.tsv").exists():
        sys.exit(f"{args.corpus}/expected.tsv not found: pass --corpus DIR")

    stats: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    misses: list[str] = []
    for case in load_cases(args.corpus):
        raws = messages_of(case.path)
        raw = raws[case.number - 1] if len(raws) >= case.number else None
        row = stats[case.kind]
        row["messages"] += 1
        row["rows"] += len(case.recipients)
        if raw is None:
            misses.append(f"{case.key}: unreadable")
            continue
        try:
            report = parse_message(raw, case.key)
            got = report.kind.value
            emails = {r.email.lower() for r in report.recipients}
        except FeedbackError as exc:
            got, emails = f"error ({exc})", set()
        row["kind_right"] += kind_matches(case.kind, got)
        row["contract_right"] += kind_matches(contract_kind(case.kind, raw), got)
        found = [r for r in case.recipients if r in emails]
        row["found"] += len(found)
        temporary, permanent = all_failures(email.message_from_bytes(raw))
        flufl = {a.decode("utf-8", "replace").lower() for a in temporary | permanent}
        row["flufl_bounce"] += bool(flufl)
        row["flufl_found"] += sum(r in flufl for r in case.recipients)
        failure = case.kind in ("hard", "soft", "failure")
        row["false_pos"] += (not failure) and got in ("hard", "soft")
        row["flufl_false_pos"] += (not failure) and bool(flufl)
        if not kind_matches(case.kind, got) or len(found) < len(case.recipients):
            misses.append(f"{case.key}: expected {case.kind} {case.recipients}, got {got} "
                          f"{sorted(emails)} {[r.status for r in report.recipients]}")

    def pct(part: int, whole: int) -> str:
        return f"{100 * part / whole:.1f}%" if whole else "—"

    print("| expected kind | messages | kind right | recipient found | flufl: bounce detected "
          "| flufl: recipient found |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    total: dict[str, int] = defaultdict(int)
    for kind in [*KIND_ORDER, "failure"]:
        if kind not in stats:
            continue
        row = stats[kind]
        for name, value in row.items():
            total[name] += value
        print(f"| {kind} | {row['messages']} | {pct(row['kind_right'], row['messages'])} | "
              f"{pct(row['found'], row['rows'])} | {pct(row['flufl_bounce'], row['messages'])} | "
              f"{pct(row['flufl_found'], row['rows'])} |")
    print(f"| **all** | {total['messages']} | {pct(total['kind_right'], total['messages'])} | "
          f"{pct(total['found'], total['rows'])} | {pct(total['flufl_bounce'], total['messages'])}"
          f" | {pct(total['flufl_found'], total['rows'])} |")
    print(f"\nkind right with delay notices expected as `other` (the contract's rule, "
          f"Sisimai says soft): {pct(total['contract_right'], total['messages'])}")
    ratio = total["found"] / total["flufl_found"] if total["flufl_found"] else float("inf")
    print(f"\nrecipient found, ours/flufl: {total['found']}/{total['flufl_found']} rows "
          f"= {ratio:.2f}x")
    print(f"non-bounces (complaint, autoreply, other) taken for a bounce: ours "
          f"{total['false_pos']}, flufl {total['flufl_false_pos']}")
    if args.misses:
        print("\nmisses:")
        for line in misses:
            print("  " + line)


if __name__ == "__main__":
    main()

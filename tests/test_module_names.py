"""Module names that tell one module from another (docs/contributing.md). Among all modules
of the package (a file's stem, or a package's folder name; cli/ aside, whose modules mirror
the command names, and migrations/, which are history):

- no two names differ only by a grammatical suffix or a plural (report, reports, reporting;
  sender, sending; page, pages): a reader cannot guess which is which;
- inside one package, no name is another name plus a word (preview, preview_watch; config,
  configfile): the longer one reads as a part of the shorter.

The same name in two packages is fine (pipeline/feedback.py beside feedback/)."""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent / "src" / "ainews_newsletter"
SET_ASIDE = {"cli", "migrations"}
SUFFIXES = ("s", "es", "ing", "er", "ers", "ion", "ed")
SHORTEST_STEM = 3  # "dns" is not "dn" plus "s"


def module_names(package_dir: Path) -> list[tuple[str, str]]:
    """(the package it is in, its name) for every module: "delivery/sender.py" is
    ("delivery", "sender"), the folder "reports/" is ("", "reports")."""
    found: list[tuple[str, str]] = []
    for path in sorted(package_dir.rglob("*.py")):
        parts = path.relative_to(package_dir).with_suffix("").parts
        if parts[0] in SET_ASIDE:
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts and not parts[-1].startswith("__"):
            found.append(("/".join(parts[:-1]), parts[-1]))
    return found


def _stems(name: str) -> set[str]:
    """The word a name may be made from: itself, and itself without each suffix it ends in
    (with the e or the doubled consonant an -ing, -er or -ed drops: paging → page)."""
    stems = {name}
    if name.endswith("ies") and len(name) - 3 >= SHORTEST_STEM:  # queries → query
        stems.add(name[:-3] + "y")
    for suffix in SUFFIXES:
        stem = name.removesuffix(suffix)
        if stem != name and len(stem) >= SHORTEST_STEM:
            stems.add(stem)
            if suffix[0] in "aeiou":
                stems.add(stem + "e")
                if len(stem) > SHORTEST_STEM and stem[-1] == stem[-2]:
                    stems.add(stem[:-1])
    return stems


def _shown(package: str, name: str) -> str:
    return f"{package}/{name}" if package else name


def name_clashes(modules: list[tuple[str, str]]) -> list[str]:
    """Each pair of modules the rules forbid, as "a ~ b", sorted."""
    clashes: set[str] = set()
    for (package_a, a), (package_b, b) in combinations(sorted(set(modules)), 2):
        if a == b:
            continue  # the same name in two packages
        shown = f"{_shown(package_a, a)} ~ {_shown(package_b, b)}"
        if _stems(a) & _stems(b):
            clashes.add(shown)
        elif package_a == package_b:
            shorter, longer = sorted((a, b), key=len)
            if longer.startswith(shorter):  # "_word" or "word": preview_watch, configfile
                clashes.add(shown)
    return sorted(clashes)


def test_module_names_tell_modules_apart() -> None:
    clashes = name_clashes(module_names(PACKAGE_DIR))
    assert not clashes, "rename one of each pair:\n" + "\n".join(clashes)


def test_the_rule_catches_names_that_differ_by_a_suffix_or_a_word() -> None:
    """A deliberately broken list: each forbidden pair is named, nothing else is."""
    modules = [
        ("delivery", "sender"), ("delivery", "sending"), ("cli_like", "sending"),
        ("feedback", "report"), ("", "reports"), ("delivery", "reporting"),
        ("reports", "page"), ("web", "pages"), ("web", "preview"), ("web", "preview_watch"),
        ("", "config"), ("", "configfile"), ("posts", "paging"),
        ("subscribers", "queries"), ("delivery", "query"),
        # allowed: the same name in two packages, a word plus a word in other packages,
        # short names a suffix would cut to nothing, unrelated names that share letters
        ("", "feedback"), ("pipeline", "feedback"), ("schedule", "history"),
        ("subscribers", "history"), ("doctor", "dkimcheck"), ("delivery", "dkim"),
        ("doctor", "dns"), ("feedback", "dsn"), ("delivery", "claims"), ("delivery", "clicks"),
    ]
    assert name_clashes(modules) == [
        "cli_like/sending ~ delivery/sender",
        "config ~ configfile",
        "delivery/query ~ subscribers/queries",
        "delivery/reporting ~ feedback/report",
        "delivery/sender ~ delivery/sending",
        "posts/paging ~ reports/page",
        "posts/paging ~ web/pages",
        "reports ~ delivery/reporting",
        "reports ~ feedback/report",
        "reports/page ~ web/pages",
        "web/preview ~ web/preview_watch",
    ]


def test_module_names_reads_files_and_folders(tmp_path: Path) -> None:
    for name in ("pkg/__init__.py", "pkg/__main__.py", "pkg/sender.py", "pkg/sub/__init__.py",
                 "pkg/sub/sending.py", "pkg/cli/senders.py", "pkg/migrations/versions/x.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    modules = module_names(tmp_path / "pkg")
    assert modules == [("", "sender"), ("", "sub"), ("sub", "sending")]
    assert name_clashes(modules) == ["sender ~ sub/sending"]

"""Readers with their own language (issue 30): one send, the issue rendered once per language
of its audience (never per reader), stored with the issue and reused by a resumed send, each
reader's message in their language, the lint gate over every language's rendering."""

from __future__ import annotations

import dataclasses
import json
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from ainews_newsletter.models import RenderedIssue
from ainews_newsletter.pipeline import issue as pipeline_issue
from ainews_newsletter.posts.windows import parse_week
from ainews_newsletter.render import digest
from ainews_newsletter.render.localized import period_label
from tests.conftest import Project, SmtpServer, smtp_env

pytestmark = pytest.mark.clock

# The German period, from Babel's CLDR data (not from a catalog).
GERMAN_PERIOD = "16.–22. November 2026"


def operator_catalogs(project: Project, *folders: str) -> None:
    """Catalogs in the operator's locale/ beside config.toml: what makes a language one
    the newsletter can be sent in (the shipped ones come with helpers' catalogs)."""
    for folder in folders:
        messages = project.root / "locale" / folder / "LC_MESSAGES"
        messages.mkdir(parents=True)
        (messages / "mail.po").write_text(
            'msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n',
            encoding="utf-8")


def import_with_languages(project: Project, rows: list[tuple[str, str]]) -> Path:
    path = project.root / "readers.csv"
    path.write_text("email,language\n" + "".join(f"{email},{language}\n"
                                                 for email, language in rows),
                    encoding="utf-8")
    result = project.run("subscribers", "import", str(path))
    assert result.exit_code == 0, result.output
    return path


READERS = [("reader-de@example.com", "de"), ("reader-ja@example.com", "ja"),
           ("reader-none@example.com", ""), ("reader-sv@example.com", "sv")]


def count_renders(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every call of render_issue from now on, as the language it rendered."""
    calls: list[str] = []
    original = digest.render_issue

    def counted(issue: Any, newsletter: Any, templates_dir: Path,
                options: digest.RenderOptions | None = None,
                timings: dict[str, float] | None = None) -> RenderedIssue:
        calls.append((options.language if options else None) or newsletter.language)
        return original(issue, newsletter, templates_dir, options, timings)

    monkeypatch.setattr(digest, "render_issue", counted)
    monkeypatch.setattr(pipeline_issue, "render_issue", counted)
    return calls


def text_of(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def by_reader(server: SmtpServer) -> dict[str, EmailMessage]:
    return {received.rcpt_tos[0]: received.message for received in server.handler.messages}


def test_three_languages_in_one_send_are_three_renders(any_project: Project,
                                                      smtp_server: SmtpServer,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    project = any_project
    operator_catalogs(project, "de", "ja")
    import_with_languages(project, READERS)
    dry = project.run("send", "--week", "2026-W47", "--dry-run", env=smtp_env(smtp_server))
    assert dry.exit_code == 0, dry.output
    # sv has no catalogs: that reader gets the newsletter's language.
    assert "languages: en 2, de 1, ja 1" in dry.stdout

    renders = count_renders(monkeypatch)
    sent = project.run("send", "--week", "2026-W47", "--yes", env=smtp_env(smtp_server))
    assert sent.exit_code == 0, sent.output
    assert sorted(renders) == ["de", "en", "ja"]  # once each, not once per reader
    assert project.query("SELECT language FROM issues") == [("en",)]
    assert sorted(project.query("SELECT language FROM issue_renderings")) == [("de",),
                                                                              ("ja",)]
    assert dict(project.query("SELECT email, language FROM deliveries")) == {
        "reader-de@example.com": "de", "reader-ja@example.com": "ja",
        "reader-none@example.com": None, "reader-sv@example.com": None}

    period = parse_week("2026-W47", ZoneInfo("Europe/Berlin"))
    messages = by_reader(smtp_server)
    assert len(messages) == 4
    german = messages["reader-de@example.com"]
    assert german["Content-Language"] == "de"
    assert GERMAN_PERIOD in text_of(german)
    japanese = messages["reader-ja@example.com"]
    assert japanese["Content-Language"] == "ja"
    assert period_label(period, "ja") in text_of(japanese)
    for english in ("reader-none@example.com", "reader-sv@example.com"):
        assert messages[english]["Content-Language"] == "en"
        assert period_label(period, "en") in text_of(messages[english])
        assert GERMAN_PERIOD not in text_of(messages[english])
    # Each reader's own unsubscribe link is in their language's rendering.
    tokens = dict(project.query("SELECT email, token FROM subscribers"))
    for address, message in messages.items():
        assert f"/unsubscribe/{tokens[address]}" in text_of(message)

    status = project.run("status", "--json")
    assert status.exit_code == 0, status.output
    assert json.loads(status.stdout)["languages"] == {"en": 2, "de": 1, "ja": 1}


def test_a_resumed_send_renders_nothing_again(any_project: Project, smtp_server: SmtpServer,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    project = any_project
    operator_catalogs(project, "de", "ja")
    import_with_languages(project, READERS)
    renders = count_renders(monkeypatch)
    down = project.run("send", "--week", "2026-W47", "--yes",
                       env={"AINEWS_SMTP__HOST": "127.0.0.1", "AINEWS_SMTP__PORT": "9"})
    assert down.exit_code == 1  # snapshotted and rendered, nothing delivered
    assert sorted(renders) == ["de", "en", "ja"]
    assert project.query("SELECT count(*) FROM deliveries WHERE state = 'sent'") == [(0,)]
    stored = dict(project.query("SELECT language, html FROM issue_renderings"))

    renders.clear()
    resumed = project.run("send", "--resume", "--yes", env=smtp_env(smtp_server))
    assert resumed.exit_code == 0, resumed.output
    assert renders == []
    assert dict(project.query("SELECT language, html FROM issue_renderings")) == stored
    messages = by_reader(smtp_server)
    assert GERMAN_PERIOD in text_of(messages["reader-de@example.com"])
    assert messages["reader-ja@example.com"]["Content-Language"] == "ja"


def test_worker_processes_build_each_row_from_its_language_s_skeleton(
        project: Project, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch) -> None:
    operator_catalogs(project, "de", "ja")
    rows = [(f"reader{index}@example.com", ("de", "ja", "")[index % 3]) for index in range(9)]
    import_with_languages(project, rows)
    renders = count_renders(monkeypatch)
    sent = project.run("send", "--week", "2026-W47", "--yes",
                       env={**smtp_env(smtp_server), "AINEWS_SMTP__CONNECTIONS": "3",
                            "AINEWS_SMTP__WORKERS": "2"})
    assert sent.exit_code == 0, sent.output
    assert sorted(renders) == ["de", "en", "ja"]
    messages = by_reader(smtp_server)
    assert {address: message["Content-Language"] for address, message in messages.items()
            } == {address: language or "en" for address, language in rows}
    assert smtp_server.handler.connections == 3


def test_the_renderings_are_frozen_with_the_issue(
        project: Project, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """The readers' languages are rendered when the issue is frozen, in its transaction: a
    resume after the posts changed (or one went) mails every language as frozen and renders
    nothing; a reader who chose a language after the freeze gets the issue's own."""
    from ainews_newsletter.config import load_config
    from ainews_newsletter.models import Window
    from ainews_newsletter.pipeline.send import freeze_issue, plan_send

    operator_catalogs(project, "de", "ja")
    import_with_languages(project, READERS)
    # Frozen as the scheduler's draft mode does it: no snapshot, nobody mailed yet.
    config = load_config(project.config_path, environ={})
    frozen = freeze_issue(config, plan_send(config, Window(week="2026-W47")))
    assert frozen.snapshot_at is None
    assert sorted(row[0] for row in project.query(
        "SELECT language FROM issue_renderings")) == ["de", "ja"]
    for post in (project.root / "posts").glob("*friday.md"):
        post.write_text(post.read_text(encoding="utf-8").replace(
            "Friday Research Result", "Edited After The Freeze"), encoding="utf-8")
    (project.root / "posts" / "2026-11-18-wednesday.md").unlink()
    renders = count_renders(monkeypatch)
    resumed = project.run("send", "--week", "2026-W47", "--yes", env=smtp_env(smtp_server))
    assert resumed.exit_code == 0, resumed.output
    assert renders == []
    mailed = by_reader(smtp_server)
    assert set(mailed) == {address for address, _ in READERS}
    for address, text in ((address, text_of(message)) for address, message in mailed.items()):
        assert "Friday Research Result" in text and "Edited After The Freeze" not in text, \
            address
    assert GERMAN_PERIOD in text_of(mailed["reader-de@example.com"])


def test_a_language_chosen_after_the_freeze_gets_the_issue_own_rendering(
        project: Project, smtp_server: SmtpServer) -> None:
    operator_catalogs(project, "de")
    project.run("subscribers", "add", "early@example.com", "--language", "de")
    project.run("subscribers", "add", "late@example.com")
    down = project.run("send", "--week", "2026-W47", "--yes",
                       env={"AINEWS_SMTP__HOST": "127.0.0.1", "AINEWS_SMTP__PORT": "9"})
    assert down.exit_code == 1
    project.run("subscribers", "add", "later@example.com", "--language", "de")
    resumed = project.run("send", "--resume", "--yes", env=smtp_env(smtp_server))
    assert resumed.exit_code == 0, resumed.output
    mailed = by_reader(smtp_server)
    assert GERMAN_PERIOD in text_of(mailed["early@example.com"])
    assert GERMAN_PERIOD not in text_of(mailed["late@example.com"])


def test_the_lint_gate_names_the_language_that_fails(project: Project, smtp_server: SmtpServer,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    operator_catalogs(project, "de", "ja")
    import_with_languages(project, READERS)
    original = digest.render_issue

    def oversized_german(issue: Any, newsletter: Any, templates_dir: Path,
                         options: digest.RenderOptions | None = None,
                         timings: dict[str, float] | None = None) -> RenderedIssue:
        rendered = original(issue, newsletter, templates_dir, options, timings)
        if options is not None and options.language == "de":  # past Gmail's clipping
            return dataclasses.replace(rendered, html=rendered.html.replace(
                "</body>", "<p>" + "Wort " * 25_000 + "</p></body>"))
        return rendered

    monkeypatch.setattr(digest, "render_issue", oversized_german)
    result = project.run("send", "--week", "2026-W47", "--yes", env=smtp_env(smtp_server))
    assert result.exit_code == 1
    assert "lint errors block the send" in result.stderr
    assert "html-size: [de] HTML is" in result.stdout
    assert "[ja]" not in result.stdout and "[en]" not in result.stdout
    assert smtp_server.handler.messages == []
    assert project.query("SELECT count(*) FROM issues") == [(0,)]


# -- readers' languages in and out ---------------------------------------------------------

def test_import_reads_a_language_column_and_refuses_an_unknown_tag(project: Project) -> None:
    path = project.root / "list.csv"
    path.write_text("email,name,language\n"
                    "a@example.com,Anna,de\n"
                    "b@example.com,Bruno,pt_br\n"
                    "c@example.com,Chloé,\n"
                    "d@example.com,Dora,not-a-language-at-all\n"
                    "e@example.com,Emi,JA\n", encoding="utf-8")
    result = project.run("subscribers", "import", str(path))
    assert result.exit_code == 1  # a row was rejected
    assert (f"{path}:5: language: unknown language 'not-a-language-at-all'"
            in result.stderr)
    assert dict(project.query("SELECT email, language FROM subscribers")) == {
        "a@example.com": "de", "b@example.com": "pt-BR", "c@example.com": None,
        "e@example.com": "ja"}

    # Our export writes the column and re-imports with it, into another store.
    exported = project.run("subscribers", "export")
    assert exported.exit_code == 0, exported.output
    header, first = exported.stdout.splitlines()[:2]
    assert header.split(",")[-1] == "language" and first.endswith(",de")
    other = Project(project.root.parent / "other")
    other.root.mkdir()
    other.write_config()
    copy = other.root / "export.csv"
    copy.write_text(exported.stdout, encoding="utf-8")
    assert other.run("subscribers", "import", str(copy)).exit_code == 0
    assert dict(other.query("SELECT email, language FROM subscribers")) == {
        "a@example.com": "de", "b@example.com": "pt-BR", "c@example.com": None,
        "e@example.com": "ja"}


def test_a_foreign_export_s_locale_column_fills_a_missing_language_only(
        project: Project) -> None:
    project.run("subscribers", "add", "known@example.com", "--language", "fr")
    path = project.root / "ghost.csv"
    path.write_text("email,name,subscribed_to_emails,locale\n"
                    "known@example.com,Known,true,de\n"
                    "new@example.com,New,true,nl-NL\n"
                    "bad@example.com,Bad,true,??\n", encoding="utf-8")
    result = project.run("subscribers", "import", str(path))
    assert result.exit_code == 1  # the row with "??"
    assert f"{path}:4: locale: unknown language '??'" in result.stderr
    assert dict(project.query("SELECT email, language FROM subscribers")) == {
        "known@example.com": "fr", "new@example.com": "nl-NL"}


def test_add_sets_and_show_prints_the_language(project: Project) -> None:
    added = project.run("subscribers", "add", "a@example.com", "--language", "pt_br")
    assert added.exit_code == 0, added.output
    assert "added a@example.com (active, language pt-BR) on newsletter" in added.stdout
    shown = project.run("subscribers", "show", "a@example.com")
    assert [line.split() for line in shown.stdout.splitlines()
            if line.startswith("language")] == [["language", "pt-BR"]]
    cleared = project.run("subscribers", "add", "a@example.com", "--language", "")
    assert cleared.exit_code == 0
    assert "updated a@example.com (active, language none)" in cleared.stdout
    shown = project.run("subscribers", "show", "a@example.com", "--json")
    assert json.loads(shown.stdout)["language"] is None

    bad = project.run("subscribers", "add", "b@example.com", "--language", "zz-nope")
    assert bad.exit_code == 1
    assert bad.stderr.count("\n") == 1 and "unknown language 'zz-nope'" in bad.stderr
    assert project.query("SELECT count(*) FROM subscribers WHERE email = 'b@example.com'"
                         ) == [(0,)]
    assert "--language TAG" in project.run("subscribers", "add", "--help").stdout


def test_counts_by_language_name_only_languages_with_catalogs(project: Project) -> None:
    operator_catalogs(project, "de")
    import_with_languages(project, [("a@example.com", "de"), ("b@example.com", "de-AT"),
                                    ("c@example.com", "sv"), ("d@example.com", "")])
    from ainews_newsletter.config import load_config
    from ainews_newsletter.pipeline.editions import audience_by_language

    config = load_config(project.config_path, environ={})
    # de-AT has no catalog of its own: it reads the de rendering; sv has none at all.
    assert audience_by_language(config) == {"de": 2, "en": 2}
    assert dict(project.query("SELECT email, language FROM subscribers"))["b@example.com"] \
        == "de-AT"  # stored as the reader gave it


def test_a_language_without_a_catalog_of_its_own_reads_its_base_or_region_sibling(
        project: Project, smtp_server: SmtpServer) -> None:
    """One rule for mails and pages (translations.closest): "pt" and "pt-PT" have no
    catalogs, the shipped pt-BR is their nearest; "de-AT" reads de; "DE" is de."""
    import_with_languages(project, [("pt@example.com", "pt"), ("pt-pt@example.com", "pt-PT"),
                                    ("de-at@example.com", "de-AT"),
                                    ("sv@example.com", "sv")])
    sent = project.run("send", "--week", "2026-W47", "--yes", env=smtp_env(smtp_server))
    assert sent.exit_code == 0, sent.output
    assert dict(project.query("SELECT email, language FROM deliveries")) == {
        "pt@example.com": "pt-BR", "pt-pt@example.com": "pt-BR",
        "de-at@example.com": "de", "sv@example.com": None}
    languages = {address: message["Content-Language"]
                 for address, message in by_reader(smtp_server).items()}
    assert languages == {"pt@example.com": "pt-BR", "pt-pt@example.com": "pt-BR",
                         "de-at@example.com": "de", "sv@example.com": "en"}


@pytest.mark.parametrize(("tag", "available", "expected"), [
    ("de", ("de", "ja"), "de"),
    ("DE", ("de", "ja"), "de"),
    ("pt_BR", ("pt-BR",), "pt-BR"),
    ("pt", ("pt-BR", "pt-AO"), "pt-AO"),  # no bare pt: the alphabetically first region
    ("pt-PT", ("pt-BR",), "pt-BR"),
    ("de-AT", ("de-CH", "de"), "de"),  # the bare base before a sibling region
    ("sv", ("de", "ja"), None),
    ("", ("de",), None),
    (None, ("de",), None),
    ("de-" + "x" * 40, ("de",), None),  # longer than any real tag
    (" de ", ("de",), "de"),
    ("zh-Hant-TW", ("zh-Hans", "zh-Hant"), "zh-Hant"),  # cut back one subtag at a time
    ("zh-Hant", ("zh-Hans",), None),  # never across scripts
    ("sr-Latn-RS", ("sr", "sr-Latn"), "sr-Latn"),
])
def test_closest_is_the_one_fallback_rule(tag: str | None, available: tuple[str, ...],
                                          expected: str | None) -> None:
    from ainews_newsletter.language_tags import closest, negotiate

    assert closest(tag, available) == expected
    if tag:
        assert negotiate(f"sv;q=0.9, {tag}", available) == expected


def test_a_test_copy_in_a_reader_language(project: Project, smtp_server: SmtpServer) -> None:
    """`send --to ADDR --language TAG`: the copy a reader of that language gets (a new
    issue's rendering made now; a frozen issue's stored one; the issue's own where there
    is none nearer); never a ledger row."""
    env = smtp_env(smtp_server)
    copy = project.run("send", "--week", "2026-W47", "--to", "me@example.com",
                       "--language", "de-AT", env=env)
    assert copy.exit_code == 0, copy.output
    assert "test copy of 2026-W47 (de) to me@example.com: sent" in copy.stdout
    [german] = [m.message for m in smtp_server.handler.messages]
    assert german["Content-Language"] == "de" and GERMAN_PERIOD in text_of(german)
    assert project.query("SELECT count(*) FROM deliveries") == [(0,)]

    # Swedish has no catalogs: a Swedish reader gets the issue's own, so does the copy.
    swedish = project.run("send", "--week", "2026-W47", "--to", "me@example.com",
                          "--language", "sv", env=env)
    assert swedish.exit_code == 0 and "(en) to me@example.com: sent" in swedish.stdout
    assert smtp_server.handler.messages[-1].message["Content-Language"] == "en"
    bad = project.run("send", "--week", "2026-W47", "--to", "me@example.com",
                      "--language", "zz-nope", env=env)
    assert bad.exit_code == 1 and "unknown language 'zz-nope'" in bad.stderr
    alone = project.run("send", "--week", "2026-W47", "--language", "de", env=env)
    assert alone.exit_code == 2 and "give --to ADDR" in alone.stderr

    import_with_languages(project, [("ja@example.com", "ja")])
    assert project.run("send", "--week", "2026-W47", "--yes", env=env).exit_code == 0
    frozen = project.run("send", "--week", "2026-W47", "--to", "me@example.com",
                         "--language", "ja", env=env)
    assert frozen.exit_code == 0, frozen.output
    assert smtp_server.handler.messages[-1].message["Content-Language"] == "ja"
    # Frozen without a German rendering: a German reader added now gets the issue's own.
    missing = project.run("send", "--week", "2026-W47", "--to", "me@example.com",
                          "--language", "de", env=env)
    assert missing.exit_code == 0 and "(en) to me@example.com: sent" in missing.stdout


@pytest.mark.parametrize(("tag", "own", "others", "expected"), [
    ("pt-PT", "pt-PT", ("pt-BR", "de"), None),  # the issue's own, not its neighbour's
    ("de", "de", ("de-CH",), None),
    ("de", "en", ("de-CH",), "de-CH"),
    ("pt", "en", ("pt-BR",), "pt-BR"),
    ("en-GB", "en", ("de",), None),
    (None, "en", ("de",), None),
])
def test_a_reader_of_the_issue_s_own_language_keeps_its_rendering(
        tag: str | None, own: str, others: tuple[str, ...], expected: str | None) -> None:
    from ainews_newsletter.language_tags import edition_for

    assert edition_for(tag, own, others) == expected

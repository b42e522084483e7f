"""Shared fixtures: a project folder with its own config, posts and SQLite file; a real SMTP
server (aiosmtpd) on 127.0.0.1 with a free port; a CliRunner bound to the project."""

from __future__ import annotations

import asyncio
import email
import email.policy
import http.server
import os
import re
import sqlite3
import ssl
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any, cast

import pytest
from click.testing import CliRunner, Result

from ainews_newsletter.cli import app
from ainews_newsletter.database import dispose_all
from ainews_newsletter.delivery.capture import EphemeralPortController

# The private Postfix and Dovecot (session fixtures postfix_peer, dovecot_peer), started
# only by the tests that ask for them; the DNS server factory dns_peer (function-scoped).
pytest_plugins = ["tests.peers.postfix", "tests.peers.dovecot", "tests.peers.dns"]

REPO = Path(__file__).resolve().parent.parent
# Real files nobody here wrote (bounces, feeds, addresses, exports), beside the repository in
# the workplace; never copied into it. Tests that read them skip, saying why, without them.
# A checkout elsewhere can point at them with SHARED_CORPORA (read once, at import; not an
# AINEWS_ variable, which the config would read as a setting).
CORPORA = Path(os.environ.get("SHARED_CORPORA") or REPO.parent / "shared" / "corpora")


def corpus(*parts: str) -> Path:
    """A path in ../shared/corpora, or a skip naming what is missing."""
    path = CORPORA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is not here: the shared corpora sit beside the repository "
                    "(../shared/corpora) in the workplace; they are never copied into it")
    return path


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-snapshots", action="store_true",
                     help="Rewrite tests/snapshots/* from the current output (review the diff).")


@pytest.fixture
def update_snapshots(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-snapshots"))


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No AINEWS_* variable of the developer's shell leaks in; no stray ./config.toml."""
    for name in list(os.environ):
        if name.upper().startswith("AINEWS_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    had_data = (REPO / "data").exists()
    yield
    dispose_all()
    assert had_data or not (REPO / "data").exists(), "a test wrote a database into the repo"


# -- posts ---------------------------------------------------------------------------------

def post_text(title: str, date: str, category: str = "Research", body: str | None = None,
              **extra: str) -> str:
    lines = ["---", f"title: {title!r}" if "'" not in title else f'title: "{title}"',
             f"date: {date}", f"category: {category}",
             f"image: https://img.example.org/{abs(hash(title)) % 10_000}.jpg",
             f"image_alt: {'An illustration for ' + title!r}"]
    lines += [f"{key}: {value}" for key, value in extra.items()]
    lines.append("---")
    lines.append(body or textwrap.dedent(f"""\
        The lead paragraph of {title}, long enough to read like a real one.

        ## What happened

        A section with more detail.

        ## Conclusion

        A closing thought."""))
    return "\n".join(lines) + "\n"


def write_post(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


# -- project -------------------------------------------------------------------------------

@dataclass
class Project:
    root: Path
    runner: CliRunner = field(default_factory=CliRunner)
    storage_url: str | None = None  # None: the config's SQLite file in the project

    @property
    def config_path(self) -> Path:
        return self.root / "config.toml"

    @property
    def posts(self) -> Path:
        return self.root / "posts"

    @property
    def database(self) -> Path:
        return self.root / "data" / "ainews.db"

    def write_config(self, extra: str = "") -> None:
        text = textwrap.dedent("""\
            [newsletter]
            name = "Test Digest"
            from = "digest@news.example.org"
            base_url = "https://news.example.org"
            postal_address = "1 Test Road, Testville"
            timezone = "Europe/Berlin"
            """) + textwrap.dedent(extra)
        # Tests post our forms the moment they are served, which [web] min_form_seconds
        # (2) takes for a bot; the tests of that rule set it back (tests/web/test_bots.py).
        web = "min_form_seconds = 0\n"
        if re.search(r"^\[web\][ \t]*$", text, flags=re.MULTILINE):
            text = re.sub(r"^\[web\][ \t]*$", lambda found: found.group(0) + "\n" + web.strip(),
                          text, count=1, flags=re.MULTILINE)
        else:
            text += "\n[web]\n" + web
        self.config_path.write_text(text, encoding="utf-8")

    def run(self, *args: str, input: str | None = None,
            env: dict[str, str] | None = None) -> Result:
        dispose_all()  # each invocation is a fresh process in real life
        # SpamAssassin takes a second or more per lint; the tests that are about it turn
        # it back on with AINEWS_LINT__SPAMASSASSIN=true.
        env = {"AINEWS_LINT__SPAMASSASSIN": "false", **(env or {})}
        if self.storage_url is not None:
            env.setdefault("AINEWS_STORAGE__URL", self.storage_url)
        return self.runner.invoke(app.cli, ["--config", str(self.config_path), *args],
                                  input=input, env=env, catch_exceptions=False)

    def import_readers(self, count: int) -> list[str]:
        """`count` active subscribers (reader000@example.com, ...) through `subscribers
        import`; returns their addresses in order."""
        addresses = [f"reader{i:03d}@example.com" for i in range(count)]
        csv_file = self.root / "list.csv"
        csv_file.write_text("email\n" + "\n".join(addresses) + "\n", encoding="utf-8")
        assert self.run("subscribers", "import", str(csv_file)).exit_code == 0
        return addresses

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Run SQL (with ? placeholders) on the project's database, SQLite or PostgreSQL."""
        if self.storage_url is None:
            with sqlite3.connect(self.database) as connection:
                return connection.execute(sql, params).fetchall()
        from sqlalchemy import text

        from ainews_newsletter.database import engine_for

        named = sql
        for index in range(len(params)):
            named = named.replace("?", f":p{index}", 1)
        with engine_for(self.storage_url).begin() as connection:
            result = connection.execute(text(named), {f"p{i}": v for i, v in enumerate(params)})
            return [tuple(row) for row in result] if result.returns_rows else []


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """A config in Europe/Berlin with three posts in 2026-W47 and one in W46."""
    result = Project(tmp_path / "project")
    result.root.mkdir()
    result.write_config()
    write_post(result.posts, "2026-11-12-older.md",
               post_text("Older Story From Last Week", "2026-11-12T10:00:00Z"))
    write_post(result.posts, "2026-11-16-monday.md",
               post_text("Monday Chip News", "2026-11-16T08:00:00Z", "Hardware"))
    write_post(result.posts, "2026-11-18-wednesday.md",
               post_text("Wednesday Policy Update", "2026-11-18T12:00:00Z", "Policy"))
    write_post(result.posts, "2026-11-20-friday.md",
               post_text("Friday Research Result", "2026-11-20T16:30:00Z"))
    return result


# -- SMTP ----------------------------------------------------------------------------------

@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    peer: tuple[str, int] = ("", 0)  # the client's address: one per connection
    mail_options: tuple[str, ...] = ()  # MAIL FROM's parameters (SMTPUTF8, BODY=…)

    @property
    def message(self) -> EmailMessage:
        return cast(EmailMessage, email.message_from_bytes(self.data, policy=email.policy.default))


class RecordingHandler:
    """Keeps every message; `replies` maps a recipient to the RCPT reply to give instead of
    250; `mail_reply` answers every MAIL FROM instead of 250; `on_rcpt` runs a check when a
    recipient arrives (e.g. read the ledger); `data_delay` makes the server slow;
    `drop_after_data` closes the connection after taking a message, before replying."""

    def __init__(self) -> None:
        self.messages: list[Received] = []
        self.connections = 0
        self.resets = 0
        self.replies: dict[str, str] = {}
        self.mail_reply: str | None = None
        self.on_rcpt: Callable[[str], None] | None = None
        self.data_delay = 0.0
        self.drop_after_data = False
        self.drop_at_rcpt_once = False  # close the connection at the first RCPT, then behave
        # Offer PIPELINING as real MTAs do (aiosmtpd takes pipelined commands but does not
        # say so); off, the client must fall back to one command per round trip.
        self.pipelining = True
        self.smtputf8 = True  # aiosmtpd offers SMTPUTF8; off, a relay that does not

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str,
                          options: list[str]) -> str:
        if self.mail_reply is not None:
            return self.mail_reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:
        self.connections += 1
        session.host_name = hostname
        if not self.smtputf8:
            responses = [line for line in responses if "SMTPUTF8" not in line.upper()]
        if self.pipelining:
            return [*responses[:-1], "250-PIPELINING", responses[-1]]
        return responses

    async def handle_RSET(self, server: Any, session: Any, envelope: Any) -> str:
        self.resets += 1
        return "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          options: list[str]) -> str:
        if self.on_rcpt is not None:
            self.on_rcpt(address)
        if self.drop_at_rcpt_once:
            self.drop_at_rcpt_once = False
            server.transport.close()
            return "421 closing"
        if address in self.replies:
            return self.replies[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                      envelope.original_content or envelope.content,
                                      tuple(session.peer), tuple(envelope.mail_options)))
        if self.drop_after_data:
            server.transport.close()
        return "250 Message accepted"


@dataclass
class SmtpServer:
    handler: RecordingHandler
    port: int

    def recipients(self) -> list[str]:
        return [rcpt for message in self.handler.messages for rcpt in message.rcpt_tos]


def self_signed_server_context(folder: Path) -> ssl.SSLContext:
    """A server-side TLS context with a fresh self-signed certificate for relay.invalid
    (valid from a day before to a day after the clock's now), its files in `folder`."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "relay.invalid")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context


@contextmanager
def running_smtp_server(**options: Any) -> Iterator[SmtpServer]:
    """aiosmtpd on 127.0.0.1 and a free port; `options` go to aiosmtpd's SMTP (e.g.
    enable_SMTPUTF8=True)."""
    handler = RecordingHandler()
    controller = EphemeralPortController(handler, hostname="127.0.0.1", port=0, **options)
    controller.start()
    try:
        yield SmtpServer(handler, controller.port)
    finally:
        controller.stop()


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    with running_smtp_server() as server:
        yield server


# -- HTTP feeds ----------------------------------------------------------------------------

class _FeedHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/slow.rss":
            time.sleep(2)
        if self.path in ("/ai-wire.rss", "/slow.rss"):
            body = (REPO / "tests" / "fixtures" / "feeds" / "ai-wire.rss").read_bytes()
            try:
                self.send_response(200)
                self.send_header("Content-Type", "application/rss+xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting (the timeout test)
        else:
            self.send_error(404, "Not Found")

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def feed_server() -> Iterator[str]:
    """An HTTP server on loopback: /ai-wire.rss, /slow.rss (answers after 2 s), else 404."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FeedHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# -- PostgreSQL --------------------------------------------------------------------------------

POSTGRES_TABLES = ("deliveries", "issue_posts", "issues", "memberships", "suppressions",
                   "lists", "subscribers", "schedule_runs", "feedback_events",
                   "subscriber_events", "issue_links", "clicks", "webhook_tokens", "welcomes",
                   "confirmation_mails", "consents", "issue_renderings")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A private PostgreSQL cluster for the test session (tests/peers/postgres.py): a
    throwaway data folder, a Unix socket only, no TCP port. Yields the SQLAlchemy URL of an
    empty database."""
    from tests.peers.postgres import Missing, PrivateCluster

    try:
        cluster = PrivateCluster(54329, fast=True)
    except Missing as exc:
        pytest.fail(str(exc))
    try:
        cluster.start()
        yield cluster.create_database("ainews_test")
    finally:
        cluster.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test using this runs twice: on a fresh SQLite file and on a freshly emptied
    PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db' / 'ainews.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """The private PostgreSQL's database, at the current schema and with every table empty."""
    url = postgres_server
    from sqlalchemy import text

    from ainews_newsletter.database import engine_for, ensure_schema

    engine = engine_for(url)
    ensure_schema(engine)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {', '.join(POSTGRES_TABLES)} RESTART IDENTITY "
                                "CASCADE"))
        # APScheduler's own table, made by the scheduler tests when they first start one.
        connection.execute(text("DROP TABLE IF EXISTS apscheduler_jobs"))
    return url


@pytest.fixture
def any_project(project: Project, database_url: str) -> Project:
    """The project fixture on SQLite and on PostgreSQL."""
    project.storage_url = database_url
    return project


@pytest.fixture
def unused_port() -> Iterator[int]:
    """A loopback port nothing listens on (connections to it are refused). The socket stays
    bound, not listening, for the whole test: a port given back at once was handed by the
    kernel to the next server the test started on port 0 (seen on CI: the "down" relay and
    the live one were the same aiosmtpd)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        yield int(probe.getsockname()[1])


def smtp_env(server: SmtpServer) -> dict[str, str]:
    return {"AINEWS_SMTP__HOST": "127.0.0.1", "AINEWS_SMTP__PORT": str(server.port)}


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc, arg-type]

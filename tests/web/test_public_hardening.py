"""Findings of a probe of `ainews serve`, each shown through Starlette's TestClient on a real
SQLite project: malformed CSRF values are a 400 (once a 500), complainers are not mailed,
no redirect trusts the Host header, every response carries the security headers, bodies are
capped, names lose their control characters and links do not reveal the address."""

from __future__ import annotations

import base64
import json

import pytest
from starlette.testclient import TestClient

from ainews_newsletter.pipeline.issue import open_subscribers
from ainews_newsletter.subscribers.signups import SignUps
from ainews_newsletter.web.hardening import PRIVATE_PREFIXES
from ainews_newsletter.web.security import CSRF_COOKIE, SECURITY_HEADERS
from tests.conftest import Project, SmtpServer
from tests.web.test_public import HTTPS, _config, _confirmation_path, _csrf

# Run again under libfaketime at awkward dates by scripts/test-clocks.
pytestmark = pytest.mark.clock


def _client(project: Project, server: SmtpServer) -> TestClient:
    from ainews_newsletter.web.public import create_public_app

    return TestClient(create_public_app(_config(project, server)), base_url=HTTPS,
                      follow_redirects=False, raise_server_exceptions=False)


def _has_security_headers(headers: object) -> bool:
    return all(getattr(headers, "get")(name) == value  # noqa: B009
               for name, value in SECURITY_HEADERS.items())


def test_malformed_csrf_values_are_a_400_on_every_form(project: Project,
                                                        smtp_server: SmtpServer) -> None:
    client = _client(project, smtp_server)
    token = open_subscribers(_config(project, smtp_server)).add("x@example.com").token
    _csrf(client)
    client.post("/subscribe", data={"email": "cy@example.com", "csrf": _csrf(client)})
    confirm = _confirmation_path(smtp_server)
    forms = ["/subscribe", confirm, f"/preferences/{token}", f"/unsubscribe/{token}"]
    values = ["\u00e9t\u00e9", "\u202e" * 3, "x" * 10_000, ""]
    # As from our own pages: a post naming no site at all is refused (403) before its CSRF
    # value is looked at (tests/web/test_embed_form.py).
    ours = {"origin": "https://news.example.org"}
    for path in forms:
        for value in values:
            # A non-ASCII or huge value in the form, with a good cookie …
            client.cookies.set(CSRF_COOKIE, "a" * 32)
            assert client.post(path, data={"csrf": value, "email": "a@example.com"},
                               headers=ours).status_code == 400, (path, value[:10])
            # … and in the cookie (sent raw, as a browser or a script could).
            client.cookies.clear()
            raw_cookie = f"{CSRF_COOKIE}={value}".encode("utf-8", "surrogatepass")
            assert client.post(path, data={"csrf": "a" * 32, "email": "a@example.com"},
                               headers={"cookie": raw_cookie, **ours}  # type: ignore[dict-item]
                               ).status_code == 400, (path, value[:10])
        assert client.post(path, data={}, headers=ours).status_code == 400  # nothing at all
        client.cookies.set(CSRF_COOKIE, "a" * 32)
        invalid_utf8 = client.post(path, content=b"csrf=%ff%fe%80&email=a%40example.com",
                                   headers={"content-type":
                                            "application/x-www-form-urlencoded", **ours})
        assert invalid_utf8.status_code == 400, path


@pytest.mark.parametrize("status", ["complained", "bounced", "manual", "active"])
def test_a_sign_up_for_someone_who_must_not_be_mailed_sends_nothing(
        project: Project, smtp_server: SmtpServer, status: str) -> None:
    """Complained, bounced, suppressed by hand, or already receiving it: no mail, and the
    same answer as for a stranger, so the form does not tell who is on the list."""
    store = open_subscribers(_config(project, smtp_server))
    store.add("known@example.com")
    if status == "manual":
        store.remove("known@example.com")
        project.query("INSERT INTO suppressions (email_normalized, reason, created_at) "
                      "VALUES ('known@example.com', 'manual', '2026-11-01 00:00:00')")
    elif status != "active":
        project.query("UPDATE subscribers SET status = ?", status)
    client = _client(project, smtp_server)
    known = client.post("/subscribe", data={"email": "known@example.com",
                                            "csrf": _csrf(client)})
    assert smtp_server.handler.messages == []
    stranger = client.post("/subscribe", data={"email": "new@example.com",
                                               "csrf": _csrf(client)})
    assert smtp_server.recipients() == ["new@example.com"]
    assert known.status_code == stranger.status_code == 200
    assert known.text.replace("known@", "new@") == stranger.text


def test_an_unsubscribed_reader_may_still_sign_up_again(project: Project,
                                                        smtp_server: SmtpServer) -> None:
    store = open_subscribers(_config(project, smtp_server))
    store.add("back@example.com")
    store.unsubscribe("back@example.com")
    client = _client(project, smtp_server)
    client.post("/subscribe", data={"email": "back@example.com", "csrf": _csrf(client)})
    assert smtp_server.recipients() == ["back@example.com"]


def test_no_redirect_is_built_from_the_host_header(project: Project,
                                                   smtp_server: SmtpServer) -> None:
    client = _client(project, smtp_server)
    moved = client.get("/issues", headers={"host": "evil.example"})
    assert moved.status_code == 308
    assert moved.headers["location"] == "https://news.example.org/issues/"
    assert client.get("/healthz/", headers={"host": "evil.example"}).status_code == 404


def test_every_response_carries_the_security_headers(project: Project,
                                                     smtp_server: SmtpServer,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from ainews_newsletter.web.public import PublicSite

    def broken(self: PublicSite) -> list[object]:
        raise RuntimeError("a bug")

    monkeypatch.setattr(PublicSite, "_archive", broken)
    client = _client(project, smtp_server)
    token = open_subscribers(_config(project, smtp_server)).add("h@example.com").token
    responses = {
        "page": client.get("/"),
        "405": client.get("/subscribe"),
        "400 form": client.post("/subscribe", content=b"--x\r\nbroken",
                                headers={"content-type": "multipart/form-data; boundary=x",
                                         "origin": "https://news.example.org"}),
        "308": client.get("/issues"),
        "404": client.get("/nothing"),
        "healthz": client.get("/healthz"),
        "413": client.post("/subscribe", content=b"x" * 70_000),
        "500": client.get("/issues/"),
        "unsubscribe": client.get(f"/unsubscribe/{token}"),
        "preferences": client.get(f"/preferences/{token}"),
    }
    assert {name: r.status_code for name, r in responses.items()} == {
        "page": 200, "405": 405, "400 form": 400, "308": 308, "404": 404, "healthz": 200,
        "413": 413, "500": 500, "unsubscribe": 200, "preferences": 200}
    for name, response in responses.items():
        assert _has_security_headers(response.headers), name
    assert responses["405"].headers["allow"]  # Starlette's header kept on our page
    for name in ("unsubscribe", "preferences"):
        assert responses[name].headers["cache-control"] == "no-store"
    # The subscribe page too: each copy carries its own form time, cookie and nonce.
    assert responses["page"].headers["cache-control"] == "no-store"
    assert "/confirm/" in PRIVATE_PREFIXES


def test_a_body_over_the_cap_is_refused(project: Project, smtp_server: SmtpServer) -> None:
    client = _client(project, smtp_server)
    csrf = _csrf(client)
    big = client.post("/subscribe", data={"email": "a@example.com", "csrf": csrf,
                                          "name": "n" * 70_000})
    assert big.status_code == 413
    assert smtp_server.handler.messages == []
    fine = client.post("/subscribe", data={"email": "a@example.com", "csrf": csrf,
                                           "name": "n" * 1000})
    assert fine.status_code == 200


def test_names_lose_control_characters_at_every_way_in(project: Project,
                                                       smtp_server: SmtpServer) -> None:
    hostile = "Eve\x00\x1b[31m Red\u202eexe.jpg\u2066\x85\tTab"
    clean = "Eve[31m Redexe.jpg Tab"
    client = _client(project, smtp_server)
    client.post("/subscribe", data={"email": "web@example.com", "name": hostile,
                                    "csrf": _csrf(client)})
    client.post(_confirmation_path(smtp_server), data={"csrf": client.cookies.get(CSRF_COOKIE)})
    assert project.run("subscribers", "add", "cli@example.com", "--name", hostile
                       ).exit_code == 0
    csv_file = project.root / "list.csv"
    csv_file.write_text(f"email,name\nimport@example.com,{hostile}\n", encoding="utf-8")
    refused = project.run("subscribers", "import", str(csv_file))  # a NUL: not text at all
    assert refused.exit_code == 1 and "list.csv: this is a binary file" in refused.stderr
    csv_file.write_text(f"email,name\nimport@example.com,{hostile.replace(chr(0), '')}\n",
                        encoding="utf-8")
    assert project.run("subscribers", "import", str(csv_file)).exit_code == 0
    stored = dict(project.query("SELECT email, name FROM subscribers"))
    assert stored == {"web@example.com": clean, "cli@example.com": clean,
                      "import@example.com": clean}
    # A name stored raw before this rule is never printed raw.
    project.query("UPDATE subscribers SET name = ? WHERE email = 'cli@example.com'", hostile)
    for command in (["subscribers", "list"], ["subscribers", "list", "--json"],
                    ["subscribers", "show", "cli@example.com"], ["subscribers", "export"]):
        output = project.run(*command).output
        assert "cli@example.com" in output, command
        assert not any(ch in output for ch in "\x00\x1b\u202e\u2066\x85"), command


def test_a_confirmation_link_does_not_reveal_the_address(project: Project,
                                                         smtp_server: SmtpServer) -> None:
    client = _client(project, smtp_server)
    client.post("/subscribe", data={"email": "private.person@example.com",
                                    "name": "Private Person", "csrf": _csrf(client)})
    token = _confirmation_path(smtp_server).rsplit("/", 1)[1]
    decoded = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    for secret in (b"private.person", b"Private Person", json.dumps("private").encode()[1:-1]):
        assert secret not in decoded and secret.decode() not in token
    confirmed = client.post(f"/confirm/{token}", data={"csrf": client.cookies.get(CSRF_COOKIE)})
    assert confirmed.status_code == 200 and "private.person@example.com" in confirmed.text


def test_a_sign_up_that_loses_the_race_for_a_new_address_joins_the_winner(
        project: Project, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two sign-ups of one new address at once: both look it up (not there), one inserts it
    first. The other must carry on with the row the first made, not fail (a race a real
    server shows only now and then; tests/web/test_serve_process.py runs it for real)."""
    from ainews_newsletter.subscribers.store import SubscriberStore

    store = open_subscribers(_config(project, smtp_server))
    SignUps(store).sign_up("race@example.com", "First", None)  # the winner, already committed
    real_get = SubscriberStore.get
    calls: list[str] = []

    def stale_get(self: SubscriberStore, address: str) -> object:
        calls.append(address)  # the loser's first lookup came before the winner's commit
        return None if len(calls) == 1 else real_get(self, address)

    monkeypatch.setattr(SubscriberStore, "get", stale_get)
    joined = SignUps(store).sign_up("race@example.com", "Second", None)
    assert joined.email == "race@example.com" and joined.status.value == "pending"
    assert project.query("SELECT count(*) FROM subscribers") == [(1,)]
    assert len(calls) >= 2  # it did look again

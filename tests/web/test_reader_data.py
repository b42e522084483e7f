""""Download my data" (issue 29): /preferences/<token>/data and `ainews subscribers data`
give one reader everything kept about them (profile, lists, history, consent, deliveries,
welcome, bounces and complaints, clicks) and nothing of a second reader who shares their
lists and issues, nor of a former reader whose id the database gave them; on SQLite and
PostgreSQL, after a real send through aiosmtpd with click tracking on."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, insert
from starlette.testclient import TestClient

from ainews_newsletter import clock
from ainews_newsletter.config import Config, load_config
from ainews_newsletter.database import engine_for
from ainews_newsletter.delivery.clickstats import click_target, record_click
from ainews_newsletter.delivery.tables import welcomes
from ainews_newsletter.feedback.events import feedback_events
from ainews_newsletter.subscribers.schema import consents
from ainews_newsletter.web.public import create_public_app
from tests.conftest import Project, SmtpServer, smtp_env

SECRET = "test-secret-key-of-enough-length"
ANN, BOB = "ann@example.com", "bob@example.com"


def _config(project: Project, server: SmtpServer) -> Config:
    environ = {**smtp_env(server), "AINEWS_SECRET_KEY": SECRET}
    if project.storage_url:
        environ["AINEWS_STORAGE__URL"] = project.storage_url
    return load_config(project.config_path, environ=environ)


def _id_and_token(project: Project, address: str) -> tuple[int, str]:
    [(subscriber_id, token)] = project.query(
        "SELECT id, token FROM subscribers WHERE email = ?", address)
    return int(subscriber_id), str(token)


def _two_readers(project: Project, server: SmtpServer) -> Config:
    """Ann and Bob on the same two lists, both sent the same issue, each with a consent, a
    welcome, a bounce, a complaint, a click; and a former reader's bounce under Ann's id."""
    project.write_config("[tracking]\nclicks = true\n")
    assert project.run("subscribers", "lists", "add", "research").exit_code == 0
    for address, name in ((ANN, "Ann Quill"), (BOB, "Bob Marlow")):
        assert project.run("subscribers", "add", address, "--name", name).exit_code == 0
        assert project.run("subscribers", "add", address, "--list", "research").exit_code == 0
    sent = project.run("send", "--week", "2026-W47", "--yes", "--force",
                       env={**smtp_env(server), "AINEWS_SECRET_KEY": SECRET})
    assert sent.exit_code == 0, sent.output
    config = _config(project, server)
    engine = engine_for(config.database_url)
    now = clock.now()
    clicked: list[int] = []
    with engine.begin() as connection:
        for address, ip in ((ANN, "192.0.2.0"), (BOB, "198.51.100.0")):
            subscriber_id, _ = _id_and_token(project, address)
            [(delivery_id,)] = project.query(
                "SELECT id FROM deliveries WHERE subscriber_id = ?", subscriber_id)
            local = address.split("@")[0]
            # The consent helper may have written one already: this test's own row.
            connection.execute(delete(consents).where(consents.c.subscriber_id == subscriber_id))
            connection.execute(insert(consents).values(
                subscriber_id=subscriber_id, how="web", source=f"https://{local}.example/form",
                ip=ip, user_agent=f"Agent-{local}", consent_text=f"text-{local}",
                given_at=now - timedelta(days=3), confirmed_at=now - timedelta(days=2)))
            connection.execute(insert(welcomes).values(
                subscriber_id=subscriber_id, email=address, name=None, state="sent",
                attempts=1, last_code=250, last_reply=f"250 ok {local}", created_at=now,
                updated_at=now, sent_at=now, return_tag=f"welcome-{local}"))
            connection.execute(insert(feedback_events).values(
                dedup_key=f"bounce-{local}", received_at=now, kind="soft", email=address,
                status="4.2.2", action="delayed", diagnostic=f"452 4.2.2 {local} mailbox full",
                source=f"imap:INBOX/{len(local)}", matched_by="tag", delivery_id=delivery_id,
                issue_id=None, subscriber_id=subscriber_id, sent_at=now, effect="counted"))
            connection.execute(insert(feedback_events).values(
                dedup_key=f"complaint-{local}", received_at=now + timedelta(minutes=1),
                kind="complaint", email=address, status="", action="complained",
                diagnostic=f"abuse report {local}", feedback_type="abuse",
                source=f"arf-{local}.eml", matched_by="tag", delivery_id=delivery_id,
                issue_id=None, subscriber_id=subscriber_id, sent_at=now, effect="none"))
            clicked.append(delivery_id)
        ann_id, _ = _id_and_token(project, ANN)
        connection.execute(insert(feedback_events).values(  # a former owner of Ann's id
            dedup_key="former", received_at=now, kind="hard", email="former@example.com",
            status="5.1.1", action="failed", diagnostic="550 5.1.1 former unknown",
            source="former.eml", matched_by="recipient", delivery_id=None, issue_id=None,
            subscriber_id=ann_id, sent_at=None, effect="none"))
    for delivery_id in clicked:
        target = click_target(engine, delivery_id, 1)
        assert target is not None
        record_click(engine, target, now, head=False)
    return config


def _check_ann(data: dict[str, Any]) -> None:
    text = json.dumps(data).lower()
    for foreign in ("bob", "marlow", "198.51.100.0", "former"):
        assert foreign not in text
    profile = data["profile"]
    assert (profile["email"], profile["name"], profile["status"]) == (ANN, "Ann Quill",
                                                                       "active")
    assert profile["created_at"] and profile["confirmed_at"]
    assert sorted(data["lists"]) == ["newsletter", "research"]
    assert [event["kind"] for event in data["history"]][:1] == ["joined"]
    consent = data["consent"]
    assert (consent["how"], consent["ip"], consent["user_agent"], consent["consent_text"]) == (
        "web", "192.0.2.0", "Agent-ann", "text-ann")
    assert consent["source"] == "https://ann.example/form" and consent["confirmed_at"]
    [delivery] = data["deliveries"]
    assert (delivery["issue"], delivery["outcome"], delivery["email"]) == ("2026-W47", "sent",
                                                                            ANN)
    assert delivery["sent_at"]
    assert data["welcome"]["outcome"] == "sent" and data["welcome"]["last_reply"] == "250 ok ann"
    bounce, complaint = sorted(data["feedback"], key=lambda event: event["kind"] != "soft")
    assert (bounce["kind"], bounce["status"], bounce["diagnostic"]) == (
        "soft", "4.2.2", "452 4.2.2 ann mailbox full")
    assert (complaint["kind"], complaint["diagnostic"]) == ("complaint", "abuse report ann")
    [click] = data["clicks"]
    assert click["issue"] == "2026-W47" and click["link"].startswith("http")
    assert click["by_scanner"] is False


def test_download_holds_everything_of_the_reader_and_nothing_else(
        any_project: Project, smtp_server: SmtpServer) -> None:
    config = _two_readers(any_project, smtp_server)
    _, token = _id_and_token(any_project, ANN)
    client = TestClient(create_public_app(config), base_url="https://testserver")
    page = client.get(f"/preferences/{token}")
    assert page.status_code == 200
    assert f'href="https://news.example.org/preferences/{token}/data"' in page.text
    assert "Download my data" in page.text
    response = client.get(f"/preferences/{token}/data")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-disposition"].startswith("attachment")
    _check_ann(response.json())
    bob = client.get(f"/preferences/{_id_and_token(any_project, BOB)[1]}/data").json()
    assert bob["profile"]["email"] == BOB and "ann@" not in json.dumps(bob)
    assert client.get("/preferences/forged/data").status_code == 400
    assert client.post(f"/preferences/{token}/data").status_code == 405


def test_subscribers_data_prints_the_same_json(any_project: Project,
                                               smtp_server: SmtpServer) -> None:
    config = _two_readers(any_project, smtp_server)
    _, token = _id_and_token(any_project, ANN)
    result = any_project.run("subscribers", "data", ANN)
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    _check_ann(printed)
    client = TestClient(create_public_app(config), base_url="https://testserver")
    assert client.get(f"/preferences/{token}/data").json() == printed
    unknown = any_project.run("subscribers", "data", "nobody@example.com")
    assert unknown.exit_code == 1
    assert unknown.stderr.strip().splitlines() == [
        "error: no subscriber with address 'nobody@example.com'"]

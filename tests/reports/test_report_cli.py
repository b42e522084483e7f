"""`ainews report` and `status --state` after a send with everything that can happen: a hard
and a soft refusal, a deferral, a DSN, a complaint, a one-click unsubscribe, people's clicks
and a scanner's. Every number is checked against a SQL count of the rows behind it."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from starlette.testclient import TestClient

from ainews_newsletter import clock
from ainews_newsletter.config import load_config
from ainews_newsletter.web.public import create_public_app
from tests.conftest import Project, SmtpServer, smtp_env
from tests.feedback.returns import arf, dsn

pytestmark = pytest.mark.clock

SECRET = "report-secret-key-of-enough-length"
CLICK = re.compile(r"https://news\.example\.org/c/([A-Za-z0-9_-]+)")


def _one(project: Project, sql: str, *params: Any) -> int:
    return int(project.query(sql, *params)[0][0])


def test_the_report_matches_the_rows_behind_it(project: Project, smtp_server: SmtpServer,
                                               tmp_path: Any) -> None:
    # A Wednesday noon: the unsubscribe and clicks minutes later stay in the same week.
    with clock.use_clock(clock.frozen(datetime(2026, 11, 25, 12, 0, tzinfo=UTC))):
        _everything_happens(project, smtp_server, tmp_path)


def _everything_happens(project: Project, smtp_server: SmtpServer, tmp_path: Any) -> None:
    project.write_config('[tracking]\nclicks = true\n[bounces]\naddress = '
                         '"bounces@news.example.org"\n')
    readers = project.import_readers(10)
    smtp_server.handler.replies = {readers[0]: "550 5.1.1 No such user here",
                                   readers[1]: "554 5.7.1 Refused as spam",
                                   readers[2]: "450 4.2.1 Try again later"}
    env = {**smtp_env(smtp_server), "AINEWS_SECRET_KEY": SECRET}
    assert project.run("send", "--week", "2026-W47", "--yes", env=env).exit_code == 0
    sent = {m.rcpt_tos[0]: m for m in smtp_server.handler.messages}

    # A DSN for reader 3, a complaint about reader 4's copy (recipient blanked out).
    late = tmp_path / "dsn.eml"
    late.write_bytes(dsn(sent[readers[3]].mail_from, readers[3], original=sent[readers[3]].data))
    complaint = tmp_path / "fbl.eml"
    complaint.write_bytes(arf("fbl@news.example.org", sent[readers[4]].data))
    assert project.run("bounces", "ingest", str(late), str(complaint), env=env).exit_code == 0

    # Reader 5 unsubscribes with one click; readers 6 and 7 click as people, minutes after
    # delivery; a scanner HEADs reader 8's link.
    config = load_config(project.config_path, environ=env)
    [(token,)] = project.query("SELECT token FROM subscribers WHERE email = ?", readers[5])
    later = clock.now() + timedelta(minutes=5)
    with clock.use_clock(clock.frozen(later)), TestClient(
            create_public_app(config), base_url="https://testserver",
            follow_redirects=False) as client:
        assert client.post(f"/unsubscribe/{token}",
                           data={"List-Unsubscribe": "One-Click"}).status_code == 200
        for reader, count in ((readers[6], 2), (readers[7], 1)):
            text = sent[reader].message.get_body(("plain",))
            assert text is not None
            for click in CLICK.findall(text.get_content())[:count]:
                assert client.get(f"/c/{click}").status_code == 302
        scanned = CLICK.findall(sent[readers[8]].data.decode("ascii", "replace"))
        assert client.head(f"/c/{scanned[0]}").status_code == 302

    result = project.run("report", "--json", env=env)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    issue = "SELECT id FROM issues WHERE period_key = '2026-W47'"
    by_state = dict(project.query(
        f"SELECT state, count(*) FROM deliveries WHERE issue_id = ({issue}) GROUP BY state"))
    assert (report["audience"], report["sent"], report["failed"], report["deferred"]) == (
        sum(by_state.values()), by_state["sent"], by_state["failed"], by_state["deferred"])
    assert (report["sent"], report["failed"], report["deferred"]) == (7, 2, 1)

    def distinct(kind: str) -> int:
        return _one(project, "SELECT count(DISTINCT subscriber_id) FROM feedback_events "
                             f"WHERE kind = ? AND issue_id = ({issue})", kind)
    assert report["bounces"] == {"hard": distinct("hard"), "soft": distinct("soft")}
    assert report["bounces"] == {"hard": 2, "soft": 1}  # RCPT-time 550 and the DSN; the 554
    assert report["complaints"] == distinct("complaint") == 1
    assert report["unsubscribes"] == _one(
        project, "SELECT count(DISTINCT subscriber_id) FROM subscriber_events WHERE "
                 f"kind = 'unsubscribed' AND issue_id = ({issue})") == 1
    people = "FROM clicks WHERE scanner = ? AND issue_id = (" + issue + ")"
    assert report["clicks"]["total"] == _one(project, f"SELECT count(*) {people}", False) == 3
    assert report["clicks"]["unique"] == _one(
        project, f"SELECT count(DISTINCT delivery_id) {people}", False) == 2
    assert report["clicks"]["scanner"] == _one(project, f"SELECT count(*) {people}", True) == 1
    assert sum(link["total"] for link in report["clicks"]["links"]) == 3
    # Bounces over the messages tried (7 accepted + 2 refused); the rest over those accepted.
    assert report["rates"] == {"bounce": round(3 / 9, 6), "complaint": round(1 / 7, 6),
                               "unsubscribe": round(1 / 7, 6)}
    assert any("complaint rate" in w for w in report["warnings"])
    assert any("bounce rate" in w for w in report["warnings"])
    started = datetime.fromisoformat(report["started"])
    finished = datetime.fromisoformat(report["finished"])
    assert started <= finished

    failed = json.loads(project.run("status", "--state", "failed", "--json", env=env).stdout)
    assert [(row["email"], row["code"], row["bounce"]) for row in failed] == [
        (readers[0], 550, "hard"), (readers[1], 554, "soft")]
    assert "No such user" in failed[0]["reply"]
    deferred = json.loads(project.run("status", "--state", "deferred", "--json").stdout)
    assert [(row["email"], row["code"]) for row in deferred] == [(readers[2], 450)]

    growth = json.loads(project.run("report", "--growth", "--weeks", "2", "--json").stdout)
    this_week = growth["weeks"][-1]
    assert this_week["week"] == clock.now().astimezone(config.newsletter.tz).strftime("%G-W%V")
    assert (this_week["joined"], this_week["unsubscribed"], this_week["bounced"],
            this_week["complained"]) == (10, 1, 2, 1)
    on_list = _one(project, "SELECT count(*) FROM subscribers WHERE status IN "
                            "('active', 'pending')")
    assert this_week["total"] == on_list == 6
    assert growth["weeks"][0]["total"] == on_list - this_week["net"] == 0


def test_growth_weeks_are_the_newsletters_weeks(project: Project) -> None:
    """Events placed by the clock at known moments land in their own ISO week in the
    newsletter's timezone (Europe/Berlin), whatever day the suite runs."""
    monday = datetime(2026, 11, 16, 0, 30, tzinfo=UTC)  # 01:30 Monday in Berlin: W47
    sunday_late = datetime(2026, 11, 15, 23, 30, tzinfo=UTC)  # 00:30 Monday Berlin: W47
    saturday = datetime(2026, 11, 14, 12, 0, tzinfo=UTC)  # W46
    for when, address in ((saturday, "a@example.com"), (sunday_late, "b@example.com"),
                          (monday, "c@example.com")):
        with clock.use_clock(clock.frozen(when)):
            assert project.run("subscribers", "add", address).exit_code == 0
    with clock.use_clock(clock.frozen(datetime(2026, 11, 20, 9, 0, tzinfo=UTC))):
        growth = json.loads(project.run("report", "--growth", "--weeks", "3",
                                        "--json").stdout)
    assert [(w["week"], w["joined"], w["total"]) for w in growth["weeks"]] == [
        ("2026-W45", 0, 0), ("2026-W46", 1, 1), ("2026-W47", 2, 3)]

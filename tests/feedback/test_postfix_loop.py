"""The whole loop through a real Postfix: the issue goes out with VERP return paths, Postfix
accepts every reader, then bounces the unknown one (5.1.1) and the full one (4.2.2, given up
at once) with its own DSNs to our bounce mailbox, a Maildir; `ainews bounces ingest` reads it
and the policy does the rest. Before this loop, such a send said "sent 3 of 3, failed 0" and
the dead address stayed active for ever."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from tests.conftest import Project

if TYPE_CHECKING:
    from tests.peers.postfix import PostfixPeer


READERS = ["ada@readers.example", "nobody-here@readers.example", "full@readers.example"]


def _maildir_files(peer: PostfixPeer, address: str) -> set[str]:
    folder = peer.maildir(address)
    return {path.name for sub in ("new", "cur") if (folder / sub).is_dir()
            for path in (folder / sub).iterdir()}


def test_postfix_bounces_come_back_and_stop_the_mail(project: Project,
                                                     postfix_peer: PostfixPeer) -> None:
    project.write_config(f"""
        [smtp]
        host = "127.0.0.1"
        port = {postfix_peer.port}

        [bounces]
        address = "bounces@news.example"
        """)
    addresses = project.root / "readers.txt"
    addresses.write_text("\n".join(READERS) + "\n", encoding="utf-8")
    assert project.run("subscribers", "import", str(addresses)).exit_code == 0
    bounce_box = postfix_peer.maildir("bounces@news.example")
    before = _maildir_files(postfix_peer, "bounces@news.example")
    # The session's Postfix is shared: other tests deliver to Ada too.
    ada_before = _maildir_files(postfix_peer, READERS[0])

    sent = project.run("send", "--week", "2026-W47", "--yes")
    assert sent.exit_code == 0, sent.output
    assert project.query("SELECT count(*) FROM deliveries WHERE state = 'sent'") == [(3,)]
    tags = dict(project.query("SELECT email, return_tag FROM deliveries"))

    # Postfix delivers Ada's copy with the VERP return path, and returns two DSNs.
    ada = postfix_peer.wait_for_mail(postfix_peer.maildir(READERS[0]), len(ada_before) + 1)
    assert any(f"Return-Path: <bounces+{tags[READERS[0]]}@news.example>".encode()
               in path.read_bytes() for path in ada if path.name not in ada_before)
    postfix_peer.wait_for_mail(bounce_box, len(before) + 2)
    ours = [path for path in postfix_peer.wait_for_mail(bounce_box, len(before) + 2)
            if path.name not in before
            and any(tags[r].encode() in path.read_bytes() for r in READERS[1:])]
    assert len(ours) == 2, postfix_peer.log()

    parsed = json.loads(project.run("bounces", "parse", *map(str, ours), "--json").stdout)
    by_recipient = {p["recipients"][0]["email"]: p for p in parsed}
    assert by_recipient[READERS[1]]["kind"] == "hard"
    assert by_recipient[READERS[1]]["recipients"][0]["status"] == "5.1.1"
    assert by_recipient[READERS[2]]["kind"] == "soft"
    assert by_recipient[READERS[2]]["recipients"][0]["status"] == "4.2.2"

    # The whole Maildir, other tests' DSNs included: theirs match no delivery of ours.
    ingested = project.run("bounces", "ingest", str(bounce_box), "--json")
    assert ingested.exit_code == 0, ingested.output
    summary = json.loads(ingested.stdout)
    matched = {e["email"]: e for e in summary["events"] if e["delivery_id"] is not None}
    assert set(matched) == set(READERS[1:])
    assert {e["matched_by"] for e in matched.values()} == {"tag"}
    status = dict(project.query("SELECT email, status FROM subscribers"))
    assert status == {READERS[0]: "active", READERS[1]: "bounced", READERS[2]: "active"}
    assert matched[READERS[2]]["effect"] == "counted 1 of 3"

    again = json.loads(project.run("bounces", "ingest", str(bounce_box), "--json").stdout)
    assert again["new_events"] == 0 and again["repeated"] >= 2
    feedback = json.loads(project.run("status", "2026-W47", "--json").stdout)["feedback"]
    assert (feedback["bounced"], feedback["hard"], feedback["soft"]) == (2, 1, 1)

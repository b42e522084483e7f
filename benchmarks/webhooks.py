"""A SendGrid webhook body of 10,000 events, matched and stored: ours against the bare floor,
in one run.

    python benchmarks/webhooks.py [--events 10000] [--runs 3]

ours:  a real `ainews serve` process (uvicorn) answering POST /webhooks/sendgrid: the ECDSA
       signature checked, the body parsed, every event matched to its delivery by our tag,
       stored once (one transaction) and the policy applied (a hard bounce in twenty), timed
       from the request's first byte to its 200 as SendGrid waits for it. The same body is
       then posted again (a retry: every event seen before).
peer:  the floor the same job cannot go under, in this process: `json.loads` of the body,
       one indexed SELECT of all the tags, and sqlite3's `executemany` INSERT of 10,000 rows
       into a table shaped like ours, in one transaction, with no checks at all.
The ledger (10,000 readers sent 2026-W47 by the memory backend with [smtp] provider =
"sendgrid", so every row carries its tag) is built beforehand and not timed."""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))
SECRET = "benchmark-secret-key-long-enough"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _ledger(root: Path, readers: int) -> tuple[Path, list[tuple[str, str]]]:
    from ainews_newsletter.config import load_config
    from ainews_newsletter.database import dispose_all
    from ainews_newsletter.models import Window
    from ainews_newsletter.pipeline.issue import open_subscribers
    from ainews_newsletter.pipeline.send import execute_send, plan_send
    from ainews_newsletter.subscribers.formats import open_subscriber_file
    from ainews_newsletter.subscribers.importer import import_rows

    database = root / "bench.db"
    people = root / "people.csv"
    people.write_text("email\n" + "".join(f"r{i}@example.com\n" for i in range(readers)))
    config = load_config(REPO / "config.toml", environ={}, overrides={
        "storage": {"url": f"sqlite:///{database}"}, "delivery": {"backend": "memory"},
        "smtp": {"provider": "sendgrid"}, "lint": {"spamassassin": False}})
    import_rows(open_subscribers(config), open_subscriber_file(people).rows)
    counts = execute_send(config, plan_send(config, Window(week="2026-W47")))
    assert counts.sent == readers, counts
    dispose_all()
    with sqlite3.connect(database) as connection:
        rows = connection.execute("SELECT email, return_tag FROM deliveries").fetchall()
    return database, [(str(email), str(tag)) for email, tag in rows]


def _body(sent: list[tuple[str, str]]) -> bytes:
    events = []
    for number, (email, tag) in enumerate(sent):
        event = {"email": email, "timestamp": 1795000000 + number, "sg_event_id": f"ev{number}",
                 "sg_message_id": f"q{number}.filterdrecv-1", "ainews_tag": tag}
        if number % 20 == 0:
            event.update(event="bounce", type="bounce", status="5.1.1",
                         reason="550 5.1.1 user unknown")
        else:
            event.update(event="delivered", response="250 OK")
        events.append(event)
    return json.dumps(events).encode()


def _floor(database: Path, body: bytes) -> float:
    """json + one SELECT of the tags + executemany INSERT in one transaction, in a copy."""
    copy = database.with_name("floor.db")
    copy.write_bytes(database.read_bytes())
    started = time.perf_counter()
    events = json.loads(body)
    with sqlite3.connect(copy) as connection:
        connection.execute("CREATE TABLE IF NOT EXISTS floor_events (id INTEGER PRIMARY KEY, "
                           "dedup_key TEXT UNIQUE, kind TEXT, email TEXT, delivery_id INTEGER)")
        tags = [event["ainews_tag"] for event in events]
        found = dict(connection.execute(
            "SELECT return_tag, id FROM deliveries WHERE return_tag IN (SELECT value FROM "
            "json_each(?))", (json.dumps(tags),)).fetchall())
        connection.executemany(
            "INSERT INTO floor_events (dedup_key, kind, email, delivery_id) VALUES (?, ?, ?, ?)",
            [(event["sg_event_id"], event["event"], event["email"],
              found.get(event["ainews_tag"])) for event in events])
    seconds = time.perf_counter() - started
    copy.unlink()
    return seconds


def _serve(database: Path, public_key: str, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "AINEWS_STORAGE__URL": f"sqlite:///{database}",
           "AINEWS_SECRET_KEY": SECRET, "AINEWS_WEBHOOKS__SENDGRID_PUBLIC_KEY": public_key,
           "PYTHONPATH": str(REPO / "src")}
    process = subprocess.Popen([sys.executable, "-m", "ainews_newsletter", "--config",
                                str(REPO / "config.toml"), "serve", "--host", "127.0.0.1",
                                "--port", str(port)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("ainews serve did not start")


def _post(port: int, body: bytes, key: object) -> tuple[float, dict[str, int]]:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    assert isinstance(key, ec.EllipticCurvePrivateKey)
    timestamp = str(int(time.time()))
    signature = key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/webhooks/sendgrid", data=body, headers={
            "Content-Type": "application/json",
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": timestamp})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=120) as answer:
        result = json.loads(answer.read())
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    public = base64.b64encode(key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
    firsts, retries, floors = [], [], []
    for run in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="ainews-webhooks-") as folder:
            database, sent = _ledger(Path(folder), args.events)
            body = _body(sent)
            floors.append(_floor(database, body))
            port = _free_port()
            process = _serve(database, public, port)
            try:
                first, result = _post(port, body, key)
                assert result["new"] == args.events and result["unmatched"] == 0, result
                again, repeated = _post(port, body, key)
                assert repeated["repeated"] == args.events, repeated
            finally:
                process.terminate()
                process.wait(timeout=30)
            with sqlite3.connect(database) as connection:
                bounced = connection.execute(
                    "SELECT count(*) FROM subscribers WHERE status = 'bounced'").fetchone()[0]
            assert bounced == (args.events + 19) // 20, bounced
            firsts.append(first)
            retries.append(again)
            print(f"run {run + 1}: body {len(body):,} bytes; ours {first:.2f} s (retry "
                  f"{again:.2f} s), floor {floors[-1]:.3f} s", flush=True)
    ours, floor = statistics.median(firsts), statistics.median(floors)
    print(f"| what | median seconds |\n| --- | ---: |\n"
          f"| ainews serve: POST of {args.events:,} SendGrid events to 200 | {ours:.2f} |\n"
          f"| the same body again (a retry, every event seen before) | "
          f"{statistics.median(retries):.2f} |\n"
          f"| floor: json + one SELECT + executemany INSERT (sqlite3) | {floor:.3f} |")
    print(f"ratio ours/floor: {ours / floor:.1f}x; goal <= 5 s: "
          f"{'met' if ours <= 5 else 'NOT met'}")


if __name__ == "__main__":
    main()

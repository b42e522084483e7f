"""`ainews doctor` with several relays ([[smtp.relays]]): each relay is checked as the sender
would reach it, each result naming its relay; one down fails its own check only."""

from __future__ import annotations

import json
from collections.abc import Callable

from ainews_newsletter import clock
from ainews_newsletter.delivery.dkim import new_private_key
from tests.conftest import Project, SmtpServer
from tests.doctor.test_doctor_cli import WEDNESDAY_OF_W48, _zone
from tests.peers.dns import DnsPeer


def test_doctor_checks_each_relay_by_name(project: Project, smtp_server: SmtpServer,
                                          unused_port: int,
                                          dns_peer: Callable[..., DnsPeer]) -> None:
    key = new_private_key()
    dns = dns_peer(_zone(key, ["v=spf1 ip4:127.0.0.1 -all"]))
    (project.root / "dkim.pem").write_bytes(key)
    project.write_config(f"""
        [dkim]
        selector = "ainews"
        domain = "news.example.org"
        private_key_path = "dkim.pem"

        [doctor]
        nameservers = ["{dns.nameserver}"]
        timeout = 2

        [[smtp.relays]]
        name = "primary"
        host = "127.0.0.1"
        port = {smtp_server.port}

        [[smtp.relays]]
        host = "127.0.0.1"
        port = {unused_port}
        """)
    with clock.use_clock(clock.frozen(WEDNESDAY_OF_W48)):
        result = project.run("doctor", "--json")
    report = json.loads(result.stdout)
    checks = {check["name"]: check for check in report["checks"]}
    assert {name: check["status"] for name, check in checks.items()} == {
        "spf": "pass", "dkim": "pass", "dmarc": "pass", "bounce-mx": "pass",
        "smtp primary": "pass", f"smtp 127.0.0.1:{unused_port}": "fail", "message": "pass"}
    assert checks["smtp primary"]["detail"].startswith("relay primary: ")
    down = checks[f"smtp 127.0.0.1:{unused_port}"]
    assert down["detail"].startswith(f"relay 127.0.0.1:{unused_port}: ") and down["fix"]
    assert result.exit_code == 1 and report["ok"] is False
    assert smtp_server.handler.messages == []  # nothing was sent

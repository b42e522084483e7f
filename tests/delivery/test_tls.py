"""STARTTLS against a real aiosmtpd with a self-signed certificate: verified by default (and
refused), accepted only with [smtp] allow_self_signed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ainews_newsletter.config import load_config
from ainews_newsletter.delivery.capture import EphemeralPortController
from ainews_newsletter.delivery.transports import TransportUnavailable
from ainews_newsletter.models import Window
from ainews_newsletter.pipeline.issue import open_subscribers
from ainews_newsletter.pipeline.send import execute_send, plan_send
from tests.conftest import Project, RecordingHandler, self_signed_server_context

# Run again under libfaketime at awkward dates by scripts/test-clocks.
pytestmark = pytest.mark.clock


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[RecordingHandler, int]]:
    context = self_signed_server_context(tmp_path)
    handler = RecordingHandler()
    controller = EphemeralPortController(handler, hostname="127.0.0.1", port=0,
                                tls_context=context, require_starttls=True)
    controller.start()
    try:
        yield handler, controller.port
    finally:
        controller.stop()


def test_self_signed_certificates_are_refused_unless_allowed(
        project: Project, tls_server: tuple[RecordingHandler, int]) -> None:
    handler, port = tls_server
    smtp = {"host": "127.0.0.1", "port": port, "security": "starttls"}
    strict = load_config(project.config_path, environ={}, overrides={"smtp": smtp})
    open_subscribers(strict).add("reader@example.com")
    with pytest.raises(TransportUnavailable, match=r"CERTIFICATE_VERIFY_FAILED|certificate"):
        execute_send(strict, plan_send(strict, Window(week="2026-W47")))
    assert handler.messages == []
    relaxed = load_config(project.config_path, environ={}, overrides={
        "smtp": {**smtp, "allow_self_signed": True}})
    counts = execute_send(relaxed, plan_send(relaxed, Window(week="2026-W47")))
    assert counts.sent == 1 and [m.rcpt_tos for m in handler.messages] == [
        ["reader@example.com"]]

"""An SMTP server that keeps what it receives: the demo's stand-in for a mail provider.
A real SMTP conversation (aiosmtpd) on a free loopback port; every message lands as an .eml."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from types import TracebackType
from typing import Any, cast

from aiosmtpd.controller import Controller

from ainews_newsletter.delivery.message import eml_filename

LOOPBACK = "127.0.0.1"


class EphemeralPortController(Controller):
    """aiosmtpd's Controller checks readiness by connecting to `self.port`; with port 0 the
    OS picks the port, so read it back from the listening socket before that check."""

    def _trigger_server(self) -> None:
        server = cast(asyncio.Server | None, self.server)
        if server is not None and server.sockets:
            self.port = server.sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]


class _SaveToFolder:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.count = 0
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content: bytes = envelope.original_content or envelope.content
        with self._lock:
            for recipient in envelope.rcpt_tos:
                self.count += 1
                (self.folder / eml_filename(self.count, recipient)).write_bytes(content)
        return "250 Message accepted for delivery"


class CaptureServer:
    """Context manager: `with CaptureServer(folder) as server: ... server.port ...`."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self._handler = _SaveToFolder(folder)
        self._controller = EphemeralPortController(self._handler, hostname=LOOPBACK, port=0)

    @property
    def port(self) -> int:
        return int(self._controller.port)

    @property
    def received(self) -> int:
        return self._handler.count

    def __enter__(self) -> CaptureServer:
        self._controller.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._controller.stop()

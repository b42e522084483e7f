"""Running the public app with uvicorn as a public server should run: requests must arrive
in time (slowloris), idle keep-alive connections are closed, there are no websockets, and
the access log never records the secret part of a reader's link."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from ainews_newsletter.config import Config
from ainews_newsletter.pipeline.welcome import WelcomeLoop
from ainews_newsletter.web.security import mask_tokens


class MaskTokens(logging.Filter):
    """uvicorn's access log line is `client - "METHOD path HTTP/x" status`: the path is its
    third argument."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], mask_tokens(args[2]), *args[3:])
        return True


class RequestTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request to arrive whole, headers and
    body: from the connection's opening, and again from the end of each response. uvicorn's
    own keep-alive timer is cancelled by any byte received, so a client trickling header or
    body bytes kept a connection (and its memory) for as long as it liked. The public forms
    are a few hundred bytes: seconds are plenty."""

    request_timeout = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._request_deadline: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._arm_request_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm_request_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._request_deadline is not None:
            self._request_deadline.cancel()
        super().connection_lost(exc)

    def _arm_request_deadline(self) -> None:
        if self._request_deadline is not None:
            self._request_deadline.cancel()
        self._request_deadline = self.loop.call_later(self.request_timeout,
                                                      self._request_deadline_passed)

    def _request_deadline_passed(self) -> None:
        self._request_deadline = None
        cycle = self.cycle
        waiting_for_headers = cycle is None or cycle.response_complete
        waiting_for_body = (cycle is not None and not cycle.response_complete
                            and cycle.more_body and not cycle.response_started)
        if (waiting_for_headers or waiting_for_body) and not self.transport.is_closing():
            self.transport.close()


def run_public_server(app: Any, config: Config, host: str, port: int) -> None:
    import uvicorn

    logging.getLogger("uvicorn.access").addFilter(MaskTokens())
    # Our own lines (sign-ups that failed, clients that hung up) beside uvicorn's, on stderr.
    ours = logging.getLogger("ainews")
    if not ours.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(name)s: %(message)s"))
        ours.addHandler(handler)
        ours.setLevel(logging.INFO)
    protocol = type("ConfiguredRequestTimeout", (RequestTimeoutProtocol,),
                    {"request_timeout": config.web.request_timeout_seconds})
    # Welcomes a crash or a 4xx left waiting go out from the start, and while serving.
    with WelcomeLoop(config):
        uvicorn.run(app, host=host, port=port, log_level="info", proxy_headers=True,
                    forwarded_allow_ips=config.web.forwarded_allow_ips, http=protocol,
                    ws="none", timeout_keep_alive=int(max(1, config.web.keep_alive_seconds)),
                    h11_max_incomplete_event_size=16 * 1024)

"""`GET|HEAD /c/<token>`: a click link of a sent issue ([tracking] clicks).

The token names a (delivery, link position) and is signed (delivery/clicktokens.py); the URL
comes from the ledger (issue_links), never from the request, so no query string or path can
turn this into an open redirect. Anything that is not a valid token for an existing
delivery and a link its issue carried gets the 404 page, never a Location header."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ainews_newsletter import clock
from ainews_newsletter.config import Config
from ainews_newsletter.delivery.clickstats import ClickTarget, click_target, record_click
from ainews_newsletter.delivery.clicktokens import ClickTokens
from ainews_newsletter.pipeline.issue import open_ledger

log = logging.getLogger("ainews.web")


class ClickRedirects:
    """The endpoint, for the public app. Present whether or not [tracking] clicks is on now:
    mail sent while it was on keeps working after it is turned off."""

    def __init__(self, config: Config, secret: str) -> None:
        self.config = config
        self.tokens = ClickTokens(secret)

    def _target(self, token: str) -> ClickTarget | None:
        ref = self.tokens.read(token)
        if ref is None:
            return None
        target = click_target(open_ledger(self.config).engine, ref.delivery_id,
                              ref.position)
        # Only ever links this tool stored; the check costs nothing and keeps a hand-edited
        # row (javascript:, a relative path) from becoming a redirect.
        if target is None or urlsplit(target.url).scheme.lower() not in ("http", "https"):
            return None
        return target

    def _record(self, target: ClickTarget, head: bool) -> None:
        try:
            record_click(open_ledger(self.config).engine, target, clock.now(), head)
        except SQLAlchemyError as exc:  # a database error loses a count, not the reader
            log.warning("click on link %s not recorded: %s", target.position, exc)

    async def redirect(self, request: Request) -> Response:
        target = await run_in_threadpool(self._target, str(request.path_params["token"]))
        if target is None:
            raise HTTPException(404)
        await run_in_threadpool(self._record, target, request.method == "HEAD")
        # 302: the link may be followed again later and must be counted again (a 301 would
        # be cached by the browser); no-store keeps proxies from answering it for us.
        return RedirectResponse(target.url, status_code=302,
                                headers={"Cache-Control": "no-store"})

"""POST /webhooks/<provider>: the mail providers' event webhooks (pipeline/webhooks.py does
the work). A provider not set up in [webhooks] is 404, as if the route did not exist. The
answers a provider acts on: 200 done (a replay too: it must stop retrying), 400 a body that is
not its events (nothing stored), 401 basic auth, 403 a failed check, 413 too large (the
webhook routes' own [webhooks] max_body_bytes), 503 the database is away (it retries). Never
a 500: whatever the body, one log line and an answer."""

from __future__ import annotations

import logging

from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ainews_newsletter.config import Config
from ainews_newsletter.errors import AinewsError
from ainews_newsletter.feedback.webhooks import WebhookBodyError
from ainews_newsletter.pipeline.webhooks import (
    WebhookRefused,
    WebhookRequest,
    handle_webhook,
    provider_enabled,
)

log = logging.getLogger("ainews.webhooks")

PATH_PREFIX = "/webhooks/"


class WebhookRoutes:
    def __init__(self, config: Config) -> None:
        self.config = config

    async def receive(self, request: Request) -> Response:
        provider = str(request.path_params["provider"])
        if not provider_enabled(self.config, provider):
            return JSONResponse({"error": "not found"}, status_code=404)
        remote = request.client.host if request.client else "-"
        body = await request.body()
        call = WebhookRequest(provider=provider, body=body, remote=remote,
                              headers={k.lower(): v for k, v in request.headers.items()})
        try:
            summary = await run_in_threadpool(handle_webhook, self.config, call)
        except WebhookRefused as refused:
            log.warning("webhook %s from %s refused: %s", provider, remote, refused.reason)
            headers = ({"WWW-Authenticate": 'Basic realm="ainews webhooks"'}
                       if refused.status == 401 else None)
            return JSONResponse({"error": refused.reason}, status_code=refused.status,
                                headers=headers)
        except WebhookBodyError as exc:
            log.warning("webhook %s from %s: %s", provider, remote, exc)
            return JSONResponse({"error": str(exc)}, status_code=400)
        except SQLAlchemyError as exc:
            log.warning("webhook %s: database unavailable: %s", provider,
                        str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__)
            return JSONResponse({"error": "database unavailable, retry"}, status_code=503)
        except AinewsError as exc:  # e.g. the SNS certificate could not be fetched
            log.warning("webhook %s from %s: %s", provider, remote, exc)
            return JSONResponse({"error": str(exc)}, status_code=503)
        except Exception as exc:  # a bug: still one line, never a 500 or a traceback
            log.error("webhook %s from %s: unexpected %s: %s (a bug: please report it)",
                      provider, remote, exc.__class__.__name__, str(exc)[:200])
            return JSONResponse({"error": "unreadable body"}, status_code=400)
        return JSONResponse({"status": "ok", "events": summary.new_events + summary.repeated,
                             "new": summary.new_events, "repeated": summary.repeated,
                             "unmatched": summary.unmatched})

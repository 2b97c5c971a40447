"""The web dashboard (SPEC 11): server-rendered pages under /dashboard that act through the
same API the SDKs use (apicall.py). See README.md in this directory for adding a screen."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from broadcaster import outages
from broadcaster.errors import ApiError
from broadcaster.logs import request_id

STATIC = Path(__file__).resolve().parent / "static"
logger = logging.getLogger("broadcaster.dashboard")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _html_errors(handler: Handler) -> Handler:
    """Domain errors and 404s inside a page render as an HTML page, not the API's JSON."""
    from broadcaster.dashboard.render import error_page

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as e:
            return error_page(request, e.status, e.message)
        except web.HTTPNotFound:
            return error_page(request, 404, "There is no such page (or it belongs to another app).")
        except web.HTTPException:
            raise
        except Exception as e:
            what = outages.dependency(e)
            if what is not None:
                return error_page(request, 503, f"{what} is unavailable; retry in a moment")
            logger.exception("dashboard page failed", extra={"fields": {"path": request.path}})
            return error_page(request, 500, f"internal error; quote request id {request_id.get()}")

    return wrapped


def setup_dashboard(app: web.Application) -> None:
    from broadcaster.dashboard.render import NAV
    from broadcaster.dashboard.routes import NAV as NAV_ITEMS
    from broadcaster.dashboard.routes import ROUTES

    for method, path, handler, name in ROUTES:
        app.router.add_route(method, path, _html_errors(handler), name=f"dashboard.{name}")
    app.router.add_static("/dashboard/static", STATIC, name="dashboard.Static", append_version=True)
    served = {path for method, path, _, _ in ROUTES if method == "GET"}
    app[NAV] = [(label, path) for label, path in NAV_ITEMS if path in served]

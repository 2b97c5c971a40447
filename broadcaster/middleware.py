"""The request pipeline: request id and access log, error rendering, server-token auth."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web

from broadcaster import auth, keyring, outages
from broadcaster.errors import ApiError, unauthorized, unavailable
from broadcaster.http import duration
from broadcaster.keys import POOL, SETTINGS, T0
from broadcaster.logs import log, request_id
from broadcaster.store import apps
from broadcaster.store.apps import AppRow
from broadcaster.validate import API_KEY_RE, REQUEST_ID_RE, path_params

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
logger = logging.getLogger("broadcaster.http")

# Operations (route names) that need no auth.
PUBLIC = {"Healthz", "Readyz", "Metrics", "OpenAPI", "Docs", "DocsAsset", "FollowLink", "Unsubscribe"}
# Dashboard pages (route names "dashboard.*") sign in with their own session cookie and call
# the API like any client (dashboard/apicall.py), so API auth and rate limits apply there.
DASHBOARD_PREFIX = "dashboard."
APP_ROW = web.RequestKey("app_row", AppRow)


def operation(request: web.Request) -> str | None:
    """The route's operation name; `/api/v2/...` aliases count as their root operation."""
    from broadcaster.api.v2 import operation_name

    route = request.match_info.route
    return operation_name(route.name if route is not None else None)


def is_public(op: str | None) -> bool:
    """No api_key/JWT and no API rate limit: public endpoints and the dashboard's pages."""
    return op is not None and (op in PUBLIC or op.startswith(DASHBOARD_PREFIX))


def current_app(request: web.Request) -> AppRow:
    row: AppRow = request[APP_ROW]
    return row


def error_response(
    request: web.Request, status: int, code: int, message: str, details: list[int] | None = None,
) -> web.Response:
    body = {
        "code": code,
        "message": message,
        "StatusCode": status,
        "duration": duration(request),
        "more_info": f"{request.app[SETTINGS].docs_url}#code-{code}",
        "details": details or [],
    }
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    request[T0] = time.perf_counter()
    # A client's id is used only when it has a strict format; otherwise we use our own and log
    # theirs (escaped and cut) in a separate field: it never reaches headers or log ids verbatim.
    theirs = request.headers.get("X-Request-Id")
    rid = theirs if theirs is not None and REQUEST_ID_RE.match(theirs) else uuid.uuid4().hex
    extra = {"client_request_id": repr(theirs[:200])} if theirs is not None and rid != theirs else {}
    token = request_id.set(rid)
    try:
        resp = await handler(request)
        resp.headers["X-Request-Id"] = rid
        if logger.isEnabledFor(logging.INFO):  # its fields are not worked out for nothing
            log(logger, logging.INFO, "request", method=request.method, path=request.path,
                status=resp.status, op=operation(request),
                ms=round((time.perf_counter() - request[T0]) * 1000, 2), **extra)
        return resp
    finally:
        request_id.reset(token)


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as e:
        return error_response(request, e.status, e.code, e.message, e.details)
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[SETTINGS].max_body_bytes
        return error_response(request, 413, 22, f"request body is larger than the maximum of {limit} bytes")
    except web.HTTPException as e:
        if e.status == 404:
            return error_response(request, 404, 16, f"no such endpoint: {request.method} {request.path}")
        if e.status == 405:
            return error_response(request, 405, 4, f"method {request.method} is not allowed on {request.path}")
        if e.status < 400:
            raise
        return error_response(request, e.status, 4, e.reason or "bad request")
    except Exception as e:
        what = outages.dependency(e)
        if what is not None:
            return _outage(request, e, what)
        rid = request_id.get()
        logger.exception("unhandled error", extra={"fields": {"path": request.path}})
        return error_response(
            request, 500, -1, f"internal error; quote request id {rid} when reporting it"
        )


_last_outage_log = 0.0


def _outage(request: web.Request, exc: Exception, what: str) -> web.Response:
    """PostgreSQL (or Redis, for the few calls that need it) is down: 503 in the error shape,
    never -1. One log line per 5 s, not a traceback a request, while it lasts."""
    global _last_outage_log
    now = time.monotonic()
    if now - _last_outage_log > 5:
        _last_outage_log = now
        log(logger, logging.WARNING, "dependency unavailable", dependency=what,
            error=f"{type(exc).__name__}: {exc}")
    err = unavailable(what)
    resp = error_response(request, err.status, err.code, err.message)
    resp.headers["Retry-After"] = "1"
    return resp


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    if is_public(operation(request)) or request.match_info.http_exception is not None:
        return await handler(request)
    if keyring.needs_key(request.app[SETTINGS]):  # PostgreSQL was down at startup
        await keyring.load(request.app[SETTINGS], request.app[POOL])
    api_key = request.query.get("api_key")
    if not api_key:
        raise unauthorized(2, "api_key query parameter is missing")
    if not API_KEY_RE.match(api_key):  # NUL, control characters, 10 kB keys: never a key
        raise unauthorized(2, f"api_key {api_key[:40]!r} is not valid")
    app_row = await apps.by_key(request.app[POOL], api_key)
    if app_row is None:
        raise unauthorized(2, f"api_key {api_key[:40]!r} is not valid")
    token = auth.token_from_header(request.headers.get("Authorization"))
    auth.check_server_token(token, app_row.secrets(), max_age_s=request.app[SETTINGS].max_token_age_s)
    request[APP_ROW] = app_row
    path_params(request.match_info)
    return await handler(request)

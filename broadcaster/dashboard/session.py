"""Dashboard sign-in, sessions and CSRF.

A sign-in checks api_key and secret as the API's app lookup does (the same key format, the
same row, any secret a server token may be signed with), comparing in constant time. The
session lives in PostgreSQL (store/dash_sessions.py); the browser holds only a random id in
an HttpOnly, SameSite=Strict cookie scoped to /dashboard. Every state-changing request must
carry the session's CSRF token (form field `csrf` or header X-CSRF-Token)."""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable

from aiohttp import web

from broadcaster.keys import POOL, SETTINGS
from broadcaster.store import apps, dash_sessions
from broadcaster.store.apps import AppRow
from broadcaster.validate import API_KEY_RE

COOKIE = "bc_dash"
PRE_COOKIE = "bc_dash_pre"  # the sign-in form's CSRF token, before there is a session
PATH = "/dashboard"
IDLE_S = 30 * 60.0
MAX_AGE_S = 12 * 3600.0
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Session:
    """The signed-in app (its row, secret included, never rendered) and the CSRF token."""

    def __init__(self, app: AppRow, csrf: str, sid_hash: str) -> None:
        self.app = app
        self.csrf = csrf
        self.sid_hash = sid_hash


SESSION = web.RequestKey("dashboard_session", Session)


def _hash(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


def secure(request: web.Request) -> bool:
    """https, directly or (BROADCASTER_TRUST_FORWARDED_PROTO) as a trusted proxy says."""
    if request.secure:
        return True
    return request.app[SETTINGS].trust_forwarded_proto and \
        request.headers.get("X-Forwarded-Proto", "").lower() == "https"


def set_cookie(request: web.Request, resp: web.StreamResponse, name: str, value: str,
               max_age: float | None = None) -> None:
    resp.set_cookie(name, value, path=PATH, httponly=True, samesite="Strict",
                    secure=secure(request), max_age=int(max_age) if max_age is not None else None)


def clear_cookie(request: web.Request, resp: web.StreamResponse, name: str) -> None:
    resp.del_cookie(name, path=PATH, httponly=True, samesite="Strict", secure=secure(request))


async def check_credentials(request: web.Request, api_key: str, secret: str) -> AppRow | None:
    """The app these credentials belong to, or None (the same answer for a wrong key and a
    wrong secret)."""
    row = await apps.by_key(request.app[POOL], api_key) if API_KEY_RE.match(api_key) else None
    candidates = row.secrets() if row is not None else ["x" * 64]
    given = secret.encode()
    match = False
    for s in candidates:  # every candidate is compared: no early exit to time
        match |= hmac.compare_digest(s.encode(), given)
    return row if row is not None and match else None


async def start(request: web.Request, resp: web.StreamResponse, app: AppRow) -> None:
    sid = secrets.token_urlsafe(32)
    await dash_sessions.create(request.app[POOL], _hash(sid), app.id, secrets.token_urlsafe(32), IDLE_S)
    set_cookie(request, resp, COOKIE, sid)
    clear_cookie(request, resp, PRE_COOKIE)


async def end(request: web.Request, resp: web.StreamResponse) -> None:
    sid = request.cookies.get(COOKIE)
    if sid:
        await dash_sessions.delete(request.app[POOL], _hash(sid))
    clear_cookie(request, resp, COOKIE)


async def load(request: web.Request) -> Session | None:
    sid = request.cookies.get(COOKIE)
    if not sid or len(sid) > 200:
        return None
    h = _hash(sid)
    row = await dash_sessions.touch(request.app[POOL], h, IDLE_S, MAX_AGE_S)
    if row is None:
        return None
    app = await apps.by_id(request.app[POOL], row.app_id)
    return Session(app, row.csrf, h) if app is not None else None


def csrf_ok(expected: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(expected.encode(), (given or "").encode())


async def given_csrf(request: web.Request) -> str | None:
    token = request.headers.get(CSRF_HEADER)
    if token:
        return token
    if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        v = (await request.post()).get(CSRF_FIELD)
        return v if isinstance(v, str) else None
    return None


def current(request: web.Request) -> Session:
    return request[SESSION]


def require_session(handler: Handler) -> Handler:
    """Signed in, or: a page redirects to the sign-in (coming back after), a JSON call is 401.
    A state-changing request without the session's CSRF token is 403 and runs nothing."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        from broadcaster.dashboard.render import error_page, wants_json

        s = await load(request)
        if s is None:
            if wants_json(request):
                return web.json_response({"error": "not signed in"}, status=401)
            target = request.path_qs if request.method in SAFE_METHODS else PATH
            raise web.HTTPSeeOther(f"{PATH}/signin?" + _next_query(target))
        if request.method not in SAFE_METHODS and not csrf_ok(s.csrf, await given_csrf(request)):
            return error_page(request, 403, "This form has expired or did not come from the "
                              "dashboard (CSRF token missing or wrong). Reload the page and retry.")
        request[SESSION] = s
        return await handler(request)

    return wrapped


def _next_query(target: str) -> str:
    from urllib.parse import urlencode

    return urlencode({"next": target})


def safe_next(value: str | None) -> str:
    """Only a dashboard path of ours (no scheme, no //host) is a place to go back to."""
    if value and value.startswith(PATH + "/") and not value.startswith("//") and "\\" not in value \
            and "//" not in value and not value.startswith(f"{PATH}/signin"):
        return value
    return f"{PATH}/campaigns"

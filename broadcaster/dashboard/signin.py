"""Sign-in and sign-out pages, and /dashboard itself."""

from __future__ import annotations

import asyncio
import secrets

from aiohttp import web
from redis.exceptions import RedisError

from broadcaster import ratelimit
from broadcaster.dashboard import session
from broadcaster.dashboard.render import redirect, render
from broadcaster.keys import REDIS
from broadcaster.validate import API_KEY_RE

# Sign-in attempts per api_key and minute: guessing a 256-bit secret is hopeless anyway, this
# keeps a script from making the attempts cost us PostgreSQL round trips.
SIGNIN_LIMIT = 30


async def index(request: web.Request) -> web.StreamResponse:
    s = await session.load(request)
    raise web.HTTPSeeOther(f"{session.PATH}/campaigns" if s else f"{session.PATH}/signin")


def _form(request: web.Request, *, status: int = 200, errors: dict[str, str] | None = None,
          api_key: str = "") -> web.Response:
    token = request.cookies.get(session.PRE_COOKIE) or secrets.token_urlsafe(32)
    resp = render(request, "signin.html", http_status=status, csrf_token=token,
                  errors=errors or {}, values={"api_key": api_key},
                  next=session.safe_next(request.query.get("next")))
    session.set_cookie(request, resp, session.PRE_COOKIE, token, max_age=3600)
    return resp


async def signin_form(request: web.Request) -> web.StreamResponse:
    return _form(request)


async def _throttled(request: web.Request, api_key: str) -> bool:
    try:
        async with asyncio.timeout(ratelimit.REDIS_TIMEOUT_S):
            v = await ratelimit.check(request.app[REDIS], 0, f"DashboardSignIn:{api_key}",
                                      SIGNIN_LIMIT)
    except (RedisError, OSError, TimeoutError):
        return False  # like the API's limiter: fail open
    return not v.allowed


async def signin_submit(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    api_key = str(form.get("api_key") or "").strip()
    secret = str(form.get("api_secret") or "").strip()
    pre = request.cookies.get(session.PRE_COOKIE)
    if not pre or not session.csrf_ok(pre, str(form.get(session.CSRF_FIELD) or "")):
        return _form(request, status=403, api_key=api_key, errors={
            "_form": "This sign-in form has expired (CSRF token missing or wrong): try again."})
    errors = {}
    if not api_key:
        errors["api_key"] = "api_key is required"
    if not secret:
        errors["api_secret"] = "api_secret is required"
    if errors:
        return _form(request, status=400, api_key=api_key, errors=errors)
    if not API_KEY_RE.match(api_key):  # never a key: not worth a limiter bucket or a query
        return _form(request, status=401, api_key=api_key[:200], errors={"api_secret": "api_key or api_secret is wrong"})
    if await _throttled(request, api_key):
        return _form(request, status=429, api_key=api_key, errors={
            "_form": f"too many sign-in attempts for this api_key: at most {SIGNIN_LIMIT} a minute"})
    app = await session.check_credentials(request, api_key, secret)
    if app is None:
        # The secret is never echoed back: the field is rendered empty.
        return _form(request, status=401, api_key=api_key,
                     errors={"api_secret": "api_key or api_secret is wrong"})
    resp = redirect(request, session.safe_next(str(form.get("next") or "")))
    await session.start(request, resp, app)
    return resp


@session.require_session
async def signout(request: web.Request) -> web.StreamResponse:
    resp = redirect(request, f"{session.PATH}/signin", flash="Signed out.")
    await session.end(request, resp)
    return resp


ROUTES = [
    ("GET", "/dashboard", index, "Index"),
    ("GET", "/dashboard/signin", signin_form, "SignInForm"),
    ("POST", "/dashboard/signin", signin_submit, "SignIn"),
    ("POST", "/dashboard/signout", signout, "SignOut"),
]

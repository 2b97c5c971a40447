"""Pages: the dashboard's own Jinja2 environment (autoescaped, package templates), the
flash message, field errors taken from the API's error message, HTML error pages."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any
from urllib.parse import quote, unquote

from aiohttp import web
from jinja2 import Environment, PackageLoader
from markupsafe import Markup, escape

from broadcaster.dashboard.apicall import ApiResult
from broadcaster.dashboard.session import CSRF_FIELD, SESSION, clear_cookie, set_cookie

FLASH_COOKIE = "bc_dash_flash"
NAV = web.AppKey("dashboard_nav", list)
# Security headers of every page: nothing but our own scripts and styles, never framed.
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                               "script-src 'self'; frame-ancestors 'none'; form-action 'self'; "
                               "base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@cache
def env() -> Environment:
    # Not the campaign sandbox (templating.py): these are our templates, tenants' data only
    # ever arrives as escaped values. Lenient undefined: API objects omit absent fields.
    e = Environment(loader=PackageLoader("broadcaster.dashboard", "templates"), autoescape=True,
                    trim_blocks=True, lstrip_blocks=True)
    e.filters["pct"] = lambda v: f"{float(v or 0):.0f}"
    e.globals["kwargs_attrs"] = lambda d: attrs(**d)
    e.globals["zip_pairs"] = lambda xs: [(x, x.replace("_", " ")) for x in xs]
    return e


def static_url(request: web.Request, name: str) -> str:
    # append_version: the URL changes with the file, so browsers never run a stale script
    return str(request.app.router["dashboard.Static"].url_for(filename=name))


def wants_json(request: web.Request) -> bool:
    return request.path.endswith(".json") or "application/json" in request.headers.get("Accept", "")


def render(request: web.Request, template: str, *, http_status: int = 200, **ctx: Any) -> web.Response:
    s = request.get(SESSION)
    csrf = s.csrf if s is not None else ctx.pop("csrf_token", "")
    flash = unquote(request.cookies.get(FLASH_COOKIE, ""))[:500]
    base = {
        "request": request, "path": request.path, "app_name": s.app.name if s else None,
        "signed_in": s is not None, "csrf_token": csrf,
        "csrf_field": lambda: Markup('<input type="hidden" name="{}" value="{}">').format(CSRF_FIELD, csrf),
        "static": lambda name: static_url(request, name), "nav": request.app.get(NAV, []), "flash": flash, "errors": {}, "values": {},
    }
    html = env().get_template(template).render({**base, **ctx})
    resp = web.Response(text=html, status=http_status, content_type="text/html", charset="utf-8")
    resp.headers.update(HEADERS)
    if flash:
        clear_cookie(request, resp, FLASH_COOKIE)
    return resp


def redirect(request: web.Request, location: str, flash: str | None = None) -> web.HTTPSeeOther:
    """A 303 to raise after a successful POST; the flash shows on the next page once."""
    resp = web.HTTPSeeOther(location)
    if flash:
        set_cookie(request, resp, FLASH_COOKIE, quote(flash[:500]))
    return resp


def error_page(request: web.Request, status: int, message: str) -> web.Response:
    if wants_json(request):
        return web.json_response({"error": message}, status=status, headers={"Cache-Control": "no-store"})
    return render(request, "error.html", http_status=status, status_code=status, message=message)


async def confirmed(request: web.Request, question: str, verb: str, back: str) -> web.Response | None:
    """None when the form says confirmed=1 (the JavaScript confirm() or this page said yes);
    else the page asking, whose button posts the same action again, confirmed."""
    form = await request.post()
    if form.get("confirmed") == "1":
        return None
    return render(request, "confirm.html", question=question, verb=verb, back=back,
                  action_url=request.path)


def field_errors(result: ApiResult, fields: Iterable[str] | Mapping[str, str]) -> dict[str, str]:
    """The API's error message next to the form field it names (the longest field name found
    in the message wins: `message_template.text` before `text`), else at the top (`_form`).
    A mapping maps the API's field names to the form's."""
    msg = result.message
    names = fields if isinstance(fields, Mapping) else {f: f for f in fields}
    for f in sorted(names, key=len, reverse=True):
        if re.search(rf"(?<![\w.]){re.escape(f)}(?![\w])", msg):
            return {names[f]: msg}
    return {"_form": msg}


def attrs(**kw: Any) -> Markup:
    """HTML attributes from keywords (for macros); True renders bare, None/False omitted."""
    out = []
    for k, v in kw.items():
        if v is None or v is False:
            continue
        name = k.rstrip("_").replace("_", "-")
        out.append(str(escape(name)) if v is True else f'{escape(name)}="{escape(v)}"')
    return Markup(" ".join(out))

"""Webhooks screen: the app's webhook URL, event filter and event hooks (PATCH /app), signing
secret rotation (never shown: the page says when the previous secret stops signing), and
the failed deliveries with paging and a replay button each. All through the API."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from broadcaster.appconfig import EVENT_TYPES
from broadcaster.dashboard.apicall import ApiResult, call
from broadcaster.dashboard.apiform import cursor, form_str, must, number, row_error
from broadcaster.dashboard.render import confirmed, field_errors, redirect, render
from broadcaster.dashboard.session import require_session

URL = "/dashboard/webhooks"
FAILED_PAGE = 20
MAIN = "webhook_url"
_HOOK_FORM = {"webhook_url": "url", "id": "id", "event_types": "events", "enabled": "enabled"}


def hook_rows(hooks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The form's rows: every hook, then an empty one to add a hook."""
    rows = [{"id": h.get("id", ""), "url": h.get("webhook_url", ""), "events": h.get("event_types") or [],
             "enabled": h.get("enabled", True), "new": False} for h in hooks]
    return [*rows, {"id": "", "url": "", "events": [], "enabled": True, "new": True}]


def hooks_from_form(form: Any) -> tuple[list[dict[str, Any]], list[int], list[dict[str, Any]]]:
    """(the event_hooks to send, the form row of each, the rows as typed for a re-render)."""
    n = int(form_str(form, "hooks") or 0)
    out, rows_of, typed = [], [], []
    for i in range(n + 1):
        p = f"hook-{i}-"
        row = {"id": form_str(form, p + "id"), "url": form_str(form, p + "url"),
               "events": [str(v) for v in form.getall(p + "events", [])],
               "enabled": form.get(p + "enabled") == "on", "new": i == n}
        typed.append(row)
        if form.get(p + "remove") == "on" or (row["new"] and not row["url"] and not row["id"]):
            continue
        hook: dict[str, Any] = {"webhook_url": row["url"], "event_types": row["events"], "enabled": row["enabled"]}
        if row["id"]:
            hook["id"] = row["id"]
        out.append(hook)
        rows_of.append(i)
    return out, rows_of, typed


def errors_of(res: ApiResult, rows_of: list[int]) -> dict[str, str]:
    """The API's message next to the field it names; `event_hooks[2].webhook_url` is the URL
    field of the form row that became the third hook sent."""
    return row_error(res.message, "event_hooks", rows_of, "hook", _HOOK_FORM, "url") or field_errors(res, ["webhook_url", "webhook_events", "webhook_rate_limit", "event_hooks"])


async def _page(request: web.Request, *, status: int = 200, errors: dict[str, str] | None = None,
                values: dict[str, Any] | None = None, rows: list[dict[str, Any]] | None = None) -> web.Response:
    app = must(await call(request, "GET", "/app"))["app"]
    failed = must(await call(request, "GET", "/webhooks/failed",
                             params={"limit": str(FAILED_PAGE), **cursor(request.query)}))
    receivers = [(MAIN, app["webhook_url"])] if app["webhook_url"] else []
    receivers += [(h["id"], h["webhook_url"]) for h in app["event_hooks"]]
    shown = values or {"webhook_url": app["webhook_url"], "webhook_events": app["webhook_events"],
                       "webhook_rate_limit": app["webhook_rate_limit"]}
    return render(request, "webhooks.html", http_status=status, errors=errors or {}, values=shown,
                  rows=rows if rows is not None else hook_rows(app["event_hooks"]),
                  event_types=EVENT_TYPES, receivers=receivers, failed=failed["webhooks"],
                  next=failed.get("next"), prev=failed.get("prev"))


@require_session
async def page(request: web.Request) -> web.StreamResponse:
    return await _page(request)


@require_session
async def save(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    hooks, rows_of, typed = hooks_from_form(form)
    rate = form_str(form, "webhook_rate_limit")
    values: dict[str, Any] = {"webhook_url": form_str(form, "webhook_url"), "webhook_rate_limit": rate,
                              "webhook_events": [str(v) for v in form.getall("webhook_events", [])]}
    body: dict[str, Any] = {"webhook_url": values["webhook_url"], "webhook_events": values["webhook_events"],
                            "event_hooks": hooks}
    if rate:
        body["webhook_rate_limit"] = number(rate)
    res = await call(request, "PATCH", "/app", json=body)
    if not res.ok:
        return await _page(request, status=res.status, errors=errors_of(res, rows_of), values=values, rows=typed)
    created = sorted((res.body.get("webhook_secrets") or {}).keys())
    note = (f" A signing secret was made for {', '.join(created)}; the dashboard never shows secrets:"
            " POST /webhooks/secrets/rotate answers one to the API." if created else "")
    raise redirect(request, URL, flash="Webhook settings saved." + note)


@require_session
async def rotate(request: web.Request) -> web.StreamResponse:
    # the receiver is in the path: the no-script confirmation page posts back to it
    receiver = request.match_info["receiver"]
    form = await request.post()
    ask = await confirmed(request, f"Rotate the signing secret of {receiver}?", "rotate", URL)
    if ask is not None:
        return ask
    overlap = form_str(form, "overlap_seconds")
    body: dict[str, Any] = {"receiver": receiver}
    if overlap:
        body["overlap_seconds"] = number(overlap)
    res = await call(request, "POST", "/webhooks/secrets/rotate", json=body)
    if not res.ok:
        return await _page(request, status=res.status, errors={f"rotate-{receiver}": res.message})
    until = res.body.get("previous_expires_at")
    # The new secret is in res.body and goes no further: it is never rendered.
    tail = f"the previous one keeps signing until {until}." if until else "the previous one no longer signs."
    raise redirect(request, URL, flash=f"Signing secret of {receiver} rotated (not shown here); {tail}")


@require_session
async def replay(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    body: dict[str, Any] = {"ids": [form_str(form, "id")]} if form.get("id") else {"since": form_str(form, "since")}
    res = await call(request, "POST", "/webhooks/replay", json=body)
    if not res.ok:
        return await _page(request, status=res.status, errors=field_errors(res, ["since", "ids"]))
    n = int(res.body.get("replayed") or 0)
    msg = f"Replayed {n} deliver{'y' if n == 1 else 'ies'}." if n else \
        "Nothing replayed: the receiver was removed or disabled since."
    raise redirect(request, URL, flash=msg)


ROUTES = [
    ("GET", URL, page, "Webhooks"),
    ("POST", URL, save, "SaveWebhooks"),
    ("POST", URL + "/rotate/{receiver}", rotate, "RotateWebhookSecret"),
    ("POST", URL + "/replay", replay, "ReplayWebhooks"),
]

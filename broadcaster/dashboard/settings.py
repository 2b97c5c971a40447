"""App settings screen: the rate limits in force (read), campaign_send_rate,
attribution_window and, when the API has them, the delivery policy settings
(default_timezone, quiet_hours, frequency_caps). Saved with PATCH /app, whose error message
is shown next to the field it names."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from broadcaster.dashboard.apicall import ApiResult, call
from broadcaster.dashboard.apiform import form_str, must, number, row_error
from broadcaster.dashboard.render import field_errors, redirect, render
from broadcaster.dashboard.session import require_session

URL = "/dashboard/settings"
POLICY_KEYS = ("default_timezone", "quiet_hours", "frequency_caps")
FIELDS = ["campaign_send_rate", "attribution_window", "default_timezone", "frequency_caps"]


def cap_rows(caps: list[dict[str, Any]] | None) -> list[dict[str, str]]:
    rows = [{"max": str(c.get("max", "")), "period": str(c.get("period", ""))} for c in caps or []]
    return [*rows, {"max": "", "period": ""}]


def caps_from_form(form: Any) -> tuple[list[dict[str, Any]], list[int], list[dict[str, str]]]:
    """(the caps to send, the form row of each, the rows as typed)."""
    n = int(form_str(form, "caps") or 0)
    out, rows_of, typed = [], [], []
    for i in range(n + 1):
        row = {"max": form_str(form, f"cap-{i}-max"), "period": form_str(form, f"cap-{i}-period")}
        typed.append(row)
        if not row["max"] and not row["period"]:  # an empty row removes (or adds nothing)
            continue
        out.append({"max": number(row["max"]), "period": row["period"]})
        rows_of.append(i)
    return out, rows_of, typed


def errors_of(res: ApiResult, rows_of: list[int]) -> dict[str, str]:
    msg = res.message
    row = row_error(msg, "frequency_caps", rows_of, "cap", {"max": "max", "period": "period"}, "max")
    if row:
        return row
    for part in ("start", "end"):
        if f"quiet_hours.{part}" in msg:
            return {f"quiet_{part}": msg}
    if "quiet_hours" in msg:
        return {"quiet_start": msg}
    return field_errors(res, FIELDS)


async def _page(request: web.Request, *, status: int = 200, errors: dict[str, str] | None = None,
                values: dict[str, Any] | None = None, caps: list[dict[str, str]] | None = None) -> web.Response:
    app = must(await call(request, "GET", "/app"))["app"]
    limits = must(await call(request, "GET", "/rate_limits"))["server_side"]
    has_policy = all(k in app for k in POLICY_KEYS)
    quiet = app.get("quiet_hours") or {}
    shown = values or {"campaign_send_rate": app["campaign_send_rate"], "attribution_window": app["attribution_window"],
                       "default_timezone": app.get("default_timezone") or "",
                       "quiet_start": quiet.get("start", ""), "quiet_end": quiet.get("end", "")}
    return render(request, "settings.html", http_status=status, errors=errors or {}, values=shown,
                  has_policy=has_policy, caps=caps if caps is not None else cap_rows(app.get("frequency_caps")),
                  limits=sorted(limits.items()), overrides=app.get("rate_limits") or {})


@require_session
async def page(request: web.Request) -> web.StreamResponse:
    return await _page(request)


@require_session
async def save(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    values = {k: form_str(form, k) for k in ("campaign_send_rate", "attribution_window", "default_timezone",
                                             "quiet_start", "quiet_end")}
    body: dict[str, Any] = {"campaign_send_rate": number(values["campaign_send_rate"] or "0"),
                            "attribution_window": values["attribution_window"]}
    caps, rows_of, typed = caps_from_form(form)
    if form.get("policy") == "1":
        body["default_timezone"] = values["default_timezone"] or None
        quiet = (values["quiet_start"], values["quiet_end"])
        body["quiet_hours"] = {"start": quiet[0], "end": quiet[1]} if any(quiet) else None
        body["frequency_caps"] = caps or None
    res = await call(request, "PATCH", "/app", json=body)
    if not res.ok:
        return await _page(request, status=res.status, errors=errors_of(res, rows_of), values=values, caps=typed)
    raise redirect(request, URL, flash="Settings saved.")


ROUTES = [
    ("GET", URL, page, "Settings"),
    ("POST", URL, save, "SaveSettings"),
]

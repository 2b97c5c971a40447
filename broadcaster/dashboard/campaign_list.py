"""The campaigns list: status, progress, sent/total and rate, live (polled) without reload;
filters by status and type; pages with the API's cursors."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from broadcaster.dashboard.apicall import call
from broadcaster.dashboard.render import error_page, render
from broadcaster.dashboard.session import require_session

STATUSES = ("draft", "scheduled", "in_progress", "paused", "completed", "stopped")
TYPES = ("one_time", "recurring", "triggered")
LIVE = ("scheduled", "in_progress", "paused")
PAGE = 25


def row(c: dict[str, Any]) -> dict[str, Any]:
    """What a list row (and its live update) shows of a campaign."""
    s = c.get("stats") or {}
    total = int(s.get("stats_recipients_total") or 0)
    sent = int(s.get("stats_messages_sent") or 0)
    return {
        "id": c["id"], "name": c.get("name") or c["id"], "status": c["status"],
        "type": c.get("type") or "one_time",
        "percent": round(float(s.get("progress") or 0) * 100),
        "sent": sent, "total": total, "sent_total": f"{sent:,} / {total:,}",
        "rate": f"{float(s.get('stats_send_rate') or 0):,.1f}/s",
        "errored": int(s.get("stats_messages_errored") or 0),
        "live": c["status"] in LIVE,
    }


def _filter(status: str, kind: str) -> dict[str, Any]:
    f: dict[str, Any] = {}
    if status:
        f["status"] = {"$eq": status}
    if kind:
        f["type"] = {"$eq": kind}
    return f


@require_session
async def campaigns_page(request: web.Request) -> web.StreamResponse:
    q = request.query
    status = q.get("status", "") if q.get("status", "") in STATUSES else ""
    kind = q.get("type", "") if q.get("type", "") in TYPES else ""
    body: dict[str, Any] = {"filter": _filter(status, kind), "limit": PAGE, "user_limit": 0}
    for k in ("next", "prev"):
        if q.get(k):
            body[k] = q[k]
    r = await call(request, "POST", "/campaigns/query", json=body)
    if not r.ok:
        return error_page(request, r.status, r.message)
    rows = [row(c) for c in r.body.get("campaigns", [])]
    return render(request, "campaigns.html", rows=rows, status=status, kind=kind,
                  statuses=STATUSES, types=TYPES, next=r.body.get("next"), prev=r.body.get("prev"),
                  live_ids=",".join(x["id"] for x in rows if x["live"]))


@require_session
async def campaigns_progress(request: web.Request) -> web.StreamResponse:
    """Live rows for the list's polling: {"rows": {id: row}, "done": no live one left}. Beside
    /dashboard/campaigns/, not under it: any id is a campaign's page there."""
    ids = [i for i in request.query.get("ids", "").split(",") if i][:PAGE]
    if not ids:
        return web.json_response({"rows": {}, "done": True})
    r = await call(request, "POST", "/campaigns/query",
                   json={"filter": {"id": {"$in": ids}}, "limit": len(ids), "user_limit": 0})
    if not r.ok:
        return web.json_response({"error": r.message}, status=r.status)
    rows = {c["id"]: row(c) for c in r.body.get("campaigns", [])}
    out = {i: {k: v for k, v in x.items() if k in ("status", "percent", "sent_total", "rate")}
           for i, x in rows.items()}
    return web.json_response({"rows": out, "done": not any(x["live"] for x in rows.values())},
                             headers={"Cache-Control": "no-store"})


ROUTES = [
    ("GET", "/dashboard/campaigns", campaigns_page, "Campaigns"),
    ("GET", "/dashboard/campaigns.json", campaigns_progress, "CampaignsProgress"),
]

"""A campaign's page: stats (live), funnel, timeline chart, variants, runs of a series, the
lifecycle actions (with confirmation), and the recipients drill-down by status."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from aiohttp import web

from broadcaster import lifecycle
from broadcaster.dashboard import charts
from broadcaster.dashboard.apicall import ApiResult, call
from broadcaster.dashboard.campaign_list import row
from broadcaster.dashboard.render import confirmed, error_page, redirect, render
from broadcaster.dashboard.session import require_session

GRANULARITIES = ("minute", "hour", "day")
RECIPIENT_STATUSES = ("pending", "sent", "read", "skipped", "errored")
ACTIONS = {  # action -> (question, verb) asked before it runs
    "pause": ("Pause this campaign? Sending stops until you resume it.", "pause"),
    "resume": ("Resume sending this campaign?", "resume"),
    "stop": ("Stop this campaign for good? Recipients not reached yet will not get it.", "stop"),
    "delete": ("Delete this campaign and its statistics? This cannot be undone.", "delete"),
}


def _path(cid: str) -> str:
    return f"/campaigns/{quote(cid, safe='')}"


def page_url(cid: str) -> str:
    return f"/dashboard/campaigns/{quote(cid, safe='')}"


async def _campaign(request: web.Request) -> tuple[dict[str, Any] | None, ApiResult]:
    r = await call(request, "GET", _path(request.match_info["id"]), params={"limit": "1"})
    return (r.body.get("campaign") if r.ok else None), r


def live(c: dict[str, Any]) -> dict[str, Any]:
    """The detail page's live numbers (the list row's plus the funnel's counters)."""
    s = c.get("stats") or {}
    out = row(c)
    out.update(read=f"{int(s.get('stats_users_read') or 0):,}",
               errored=f"{int(s.get('stats_messages_errored') or 0):,}",
               skipped=f"{int(s.get('stats_recipients_skipped') or 0):,}",
               clicked=f"{int(s.get('stats_users_clicked') or 0):,}")
    return out


def actions(status: str) -> list[str]:
    return [a for a in ("start", "pause", "resume", "stop", "delete") if lifecycle.allowed(a, status)]


@require_session
async def detail(request: web.Request) -> web.StreamResponse:
    c, r = await _campaign(request)
    if c is None:
        return error_page(request, r.status, r.message)
    g = request.query.get("granularity", "minute")
    g = g if g in GRANULARITIES else "minute"
    st = await call(request, "GET", _path(c["id"]) + "/stats", params={"granularity": g})
    buckets = st.body.get("timeline", []) if st.ok else []
    s = c.get("stats") or {}
    steps = [("Recipients", int(s.get("stats_recipients_total") or 0)),
             ("Sent", int(s.get("stats_messages_sent") or 0)), ("Read", int(s.get("stats_users_read") or 0)),
             ("Clicked", int(s.get("stats_users_clicked") or 0)),
             ("Converted", int(s.get("stats_users_converted") or 0))]
    runs: list[dict[str, Any]] = []
    if c.get("type") == "recurring":
        rr = await call(request, "GET", _path(c["id"]) + "/runs", params={"limit": "10"})
        runs = [row(x) for x in rr.body.get("runs", [])] if rr.ok else []
    variants = []
    counts = s.get("variants") or {}
    for v in (c.get("message_template") or {}).get("variants") or []:
        n = counts.get(v.get("id"), {})
        variants.append({"id": v.get("id"), "weight": v.get("weight", 1), "text": v.get("text", ""),
                         **{k: int(n.get(k) or 0) for k in ("sent", "read", "clicked", "converted")}})
    return render(request, "campaign.html", c=c, live=live(c), granularity=g, granularities=GRANULARITIES,
                  timeline=charts.timeline(buckets, f"Messages per {g}"), buckets=buckets,
                  funnel=charts.funnel(steps), steps=steps, runs=runs, variants=variants,
                  actions=actions(c["status"]), questions=ACTIONS, url=page_url(c["id"]),
                  winner=s.get("winner"))


@require_session
async def detail_progress(request: web.Request) -> web.StreamResponse:
    c, r = await _campaign(request)
    if c is None:
        return web.json_response({"error": r.message}, status=r.status)
    v = live(c)
    keys = ("status", "percent", "sent_total", "rate", "read", "errored", "skipped", "clicked")
    return web.json_response({"rows": {c["id"]: {k: v[k] for k in keys}}, "done": not v["live"]},
                             headers={"Cache-Control": "no-store"})


@require_session
async def act(request: web.Request) -> web.StreamResponse:
    cid, action = request.match_info["id"], request.match_info["action"]
    back = page_url(cid)
    if action not in (*ACTIONS, "start"):
        return error_page(request, 404, f"There is no campaign action {action[:40]!r}.")
    if action in ACTIONS:
        question, verb = ACTIONS[action]
        page = await confirmed(request, question, verb, back)
        if page is not None:
            return page
    if action == "delete":
        r = await call(request, "DELETE", _path(cid))
        if r.ok:
            return redirect(request, "/dashboard/campaigns", flash=f"Campaign {cid} deleted.")
    else:
        body: dict[str, Any] = {}
        if action == "start":
            form = await request.post()
            for key in ("scheduled_for", "stop_at"):
                when = str(form.get(key) or "").strip()
                if when:  # <input type=datetime-local> gives "YYYY-MM-DDTHH:MM", read as UTC
                    body[key] = when + (":00Z" if len(when) == 16 else "Z")
        r = await call(request, "POST", f"{_path(cid)}/{action}", json=body)
    if r.status == 404:
        return error_page(request, 404, r.message)
    done = {"start": "started", "pause": "paused", "resume": "resumed", "stop": "stopped"}.get(action, action)
    return redirect(request, back, flash=f"Campaign {done}." if r.ok else f"Could not {action}: {r.message}")


@require_session
async def recipients(request: web.Request) -> web.StreamResponse:
    c, r = await _campaign(request)
    if c is None:
        return error_page(request, r.status, r.message)
    q = request.query
    status = q.get("status", "") if q.get("status", "") in RECIPIENT_STATUSES else ""
    params = {"limit": "50", **({"status": status} if status else {})}
    for k in ("next", "prev"):
        if q.get(k):
            params[k] = q[k]
    rr = await call(request, "GET", _path(c["id"]) + "/recipients", params=params)
    if not rr.ok:
        return error_page(request, rr.status, rr.message)
    return render(request, "recipients.html", c=c, url=page_url(c["id"]), status=status,
                  statuses=RECIPIENT_STATUSES, rows=rr.body.get("recipients", []),
                  next=rr.body.get("next"), prev=rr.body.get("prev"),
                  excludable=c["status"] in EXCLUDABLE)


EXCLUDABLE = ("scheduled", "in_progress", "paused")  # statuses whose pending recipients can be removed


@require_session
async def exclude_recipient(request: web.Request) -> web.StreamResponse:
    """DELETE /campaigns/{id}/recipients/{target_id} behind a confirmation: the recipient's
    ledger row becomes skipped/excluded, so its batch never sends to it."""
    cid, target = request.match_info["id"], request.match_info["target"]
    form = await request.post()
    status = str(form.get("status") or "")
    back = page_url(cid) + "/recipients" + (f"?status={quote(status)}" if status in RECIPIENT_STATUSES else "")
    page = await confirmed(request, f"Exclude {target[:64]!r}? They will not receive this campaign.",
                           "exclude", back)
    if page is not None:
        return page
    r = await call(request, "DELETE", f"{_path(cid)}/recipients/{quote(target, safe='')}")
    if r.status == 404 and "campaign" in r.message and "recipient" not in r.message:
        return error_page(request, 404, r.message)
    flash = f"{target} excluded: they will not receive this campaign." if r.ok else f"Could not exclude: {r.message}"
    return redirect(request, back, flash=flash)


ROUTES = [
    ("GET", "/dashboard/campaigns/{id}", detail, "Campaign"),
    ("GET", "/dashboard/campaigns/{id}/progress.json", detail_progress, "CampaignProgress"),
    ("GET", "/dashboard/campaigns/{id}/recipients", recipients, "CampaignRecipients"),
    ("POST", "/dashboard/campaigns/{id}/{action}", act, "CampaignAction"),
    ("POST", "/dashboard/campaigns/{id}/recipients/{target}/exclude", exclude_recipient, "CampaignRecipientExclude"),
]

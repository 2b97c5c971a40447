"""Automation screen: recurring campaigns (schedule, next occurrences, runs with their stats)
and triggered campaigns (trigger, delay, times triggered), with pause/resume/stop. Reads and
actions are the API's (apicall.py); the next occurrences come from the pure schedule module,
the same one the tick uses."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

import orjson
from aiohttp import web

from broadcaster import timefmt
from broadcaster.dashboard.apicall import call
from broadcaster.dashboard.apiform import cursor, must
from broadcaster.dashboard.render import confirmed, redirect, render
from broadcaster.dashboard.session import require_session
from broadcaster.domain import schedule as sched
from broadcaster.errors import ApiError

PAGE = 25
RUNS_PAGE = 10
NEXT_OCCURRENCES = 5
TYPES = ("recurring", "triggered")
ACTIONS = {"pause": "Paused", "resume": "Resumed", "stop": "Stopped"}
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _path(cid: str) -> str:
    return f"/campaigns/{quote(cid, safe='')}"


def page_url(cid: str) -> str:
    return f"/dashboard/automation/{quote(cid, safe='')}"


def describe(s: dict[str, Any]) -> str:
    """A schedule in words: "weekly on Monday at 09:00 (Europe/Amsterdam)"."""
    when = s.get("frequency", "")
    if when == "weekly" and s.get("day_of_week") is not None:
        when += f" on {DAYS[int(s['day_of_week'])]}"
    if when == "monthly" and s.get("day_of_month") is not None:
        when += f" on day {s['day_of_month']}"
    return f"{when} at {s.get('time', '')} ({s.get('timezone', 'UTC')})"


def upcoming(c: dict[str, Any], now: datetime) -> list[str]:
    """The next occurrences of a scheduled series, in its own timezone (as the tick will
    start them); none while it is paused, stopped or done."""
    if c.get("status") != "scheduled" or not c.get("schedule"):
        return []
    s = sched.parse(c["schedule"])
    runs = int(c.get("runs_started") or 0)  # max_runs counts the runs already started
    out: list[str] = []
    t: datetime | None = now
    while t is not None and len(out) < NEXT_OCCURRENCES:
        t = sched.next_after(s, t, runs + len(out))
        if t is not None:
            out.append(t.astimezone(s.tz).strftime("%a %Y-%m-%d %H:%M %Z"))
    return out


@require_session
async def list_page(request: web.Request) -> web.StreamResponse:
    kind = request.query.get("type", "recurring")
    if kind not in TYPES:
        raise ApiError(404, 16, f"there is no {kind[:40]!r} tab: recurring or triggered")
    body = {"filter": {"type": kind}, "sort": [{"field": "created_at", "direction": -1}],
            "limit": PAGE, "user_limit": 1, **cursor(request.query)}
    page = must(await call(request, "POST", "/campaigns/query", json=body))
    return render(request, "automation.html", kind=kind, campaigns=page["campaigns"],
                  next=page.get("next"), prev=page.get("prev"), describe=describe,
                  tab_extra="&" + urlencode({"type": kind}))


async def _detail(request: web.Request, cid: str, **ctx: Any) -> web.Response:
    c = must(await call(request, "GET", _path(cid), params={"limit": "1"}))["campaign"]
    if c.get("type") not in TYPES:  # a one-time campaign (or a run) has the campaign screen
        raise web.HTTPSeeOther(f"/dashboard/campaigns/{quote(cid, safe='')}")
    runs: list[dict[str, Any]] = []
    links: dict[str, Any] = {}
    if c["type"] == "recurring":
        params = {"limit": str(RUNS_PAGE), **cursor(request.query)}
        page = must(await call(request, "GET", _path(cid) + "/runs", params=params))
        runs, links = page["runs"], {k: page.get(k) for k in ("next", "prev")}
    trigger = c.get("trigger") or {}
    return render(request, "automation_detail.html", c=c, runs=runs, next=links.get("next"), prev=links.get("prev"),
                  upcoming=upcoming(c, timefmt.now()), describe=describe, page_url=page_url(cid),
                  trigger_filter=orjson.dumps(trigger.get("filter"), option=orjson.OPT_INDENT_2).decode()
                  if trigger.get("filter") else "", **ctx)


@require_session
async def detail(request: web.Request) -> web.StreamResponse:
    return await _detail(request, request.match_info["id"])


@require_session
async def act(request: web.Request) -> web.StreamResponse:
    cid, action = request.match_info["id"], request.match_info["action"]
    if action not in ACTIONS:
        raise ApiError(404, 16, f"there is no action {action[:40]!r}")
    if action == "stop":
        ask = await confirmed(request, f"Stop {cid}? A stopped campaign cannot be resumed.", "stop",
                              page_url(cid))
        if ask is not None:
            return ask
    res = await call(request, "POST", f"{_path(cid)}/{action}")
    if not res.ok:
        if res.status == 404:
            must(res)
        return await _detail(request, cid, http_status=res.status, errors={"_form": res.message})
    raise redirect(request, page_url(cid), flash=f"{ACTIONS[action]} {cid}.")


ROUTES = [
    ("GET", "/dashboard/automation", list_page, "Automation"),
    ("GET", "/dashboard/automation/{id}", detail, "AutomationDetail"),
    ("POST", "/dashboard/automation/{id}/{action}", act, "AutomationAction"),
]

"""Campaign types on the API (SPEC 5A): the `type`/`schedule` fields of create and update,
the recurring hooks of start/stop/pause/resume/delete, and `GET /campaigns/{id}/runs`."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

import asyncpg
from aiohttp import web

from broadcaster import cursors
from broadcaster.domain import schedule, series, triggers
from broadcaster.errors import bad_request
from broadcaster.http import ok
from broadcaster.keys import POOL, SETTINGS
from broadcaster.middleware import current_app
from broadcaster.services import recurring
from broadcaster.services import triggers as triggered
from broadcaster.store import campaign_view, campaigns, events, ledger, occurrences, runs
from broadcaster.store import occurrence_views as family_views
from broadcaster.store.ledger import Tx

routes = web.RouteTableDef()


def type_fields(body: dict[str, Any]) -> dict[str, Any]:
    """`type` (default one_time) and what it requires, validated (400 naming the field)."""
    kind = body.get("type", "one_time")
    if kind is None:
        kind = "one_time"
    if kind not in series.TYPES:
        raise bad_request(f"type must be one of {', '.join(series.TYPES)}, got {str(kind)[:40]!r}")
    raw = body.get("schedule")
    out: dict[str, Any] = {"type": kind, "schedule": None, "trigger": None, "delay": None, "once_per_user": True}
    if kind == "recurring":
        if raw is None:
            raise bad_request("schedule is required for a recurring campaign {frequency, time, timezone, ...}")
        schedule.parse(raw)
        out["schedule"] = schedule.as_json(raw)
    elif raw is not None:
        raise bad_request(f"schedule applies to recurring campaigns only, not type {kind!r}")
    if kind == "triggered":
        out.update(triggers.fields(body))
    else:
        for k in ("trigger", "delay"):
            if body.get(k) is not None:
                raise bad_request(f"{k} applies to triggered campaigns only, not type {kind!r}")
    return out


def check_create(cid: str, data: dict[str, Any]) -> None:
    if data["type"] == "recurring" and len(cid) > series.MAX_PARENT_ID:
        raise bad_request(f"id of a recurring campaign is at most {series.MAX_PARENT_ID} characters"
                          " (its runs are named <id>-run-<n>)")
    if data["type"] == "triggered" and data.get("once_per_user") is False and len(cid) > occurrences.MAX_PARENT_ID:
        raise bad_request(f"id of a triggered campaign with once_per_user false is at most"
                          f" {occurrences.MAX_PARENT_ID} characters (its occurrences are named <id>-occ-<n>)")


async def on_update(conn: Tx, before: asyncpg.Record, after: asyncpg.Record) -> asyncpg.Record:
    """A type change is for drafts only; a scheduled series takes its new schedule from now."""
    if before["type"] != after["type"] and before["status"] != "draft":
        raise bad_request(f"type cannot change once the campaign is {before['status']!r}")
    if after["type"] == "triggered":
        check_create(after["id"], {"type": "triggered", "once_per_user": after["once_per_user"]})
        if after["parent_id"] is not None:
            raise bad_request(f"campaign {after['id']!r} is an occurrence of {after['parent_id']!r}: update that one")
        await occurrences.follow_parent(conn, after)
    if after["type"] == "recurring" and after["status"] == "scheduled" and before["schedule"] != after["schedule"]:
        nxt = schedule.next_after(schedule.parse(after["schedule"]), await recurring.db_now(conn),
                                  int(after["runs_started"]))
        return await runs.set_series_status(conn, after, "scheduled", None, nxt)
    return after


async def start(conn: Tx, row: asyncpg.Record, sched: datetime | None, stop_at: datetime | None) -> asyncpg.Record:
    """start of a recurring (scheduled from its first occurrence) or triggered (listening
    now) campaign, locked FOR UPDATE."""
    if row["type"] == "recurring":
        if stop_at is not None:
            raise bad_request("stop_at does not apply to a recurring campaign: use schedule.ends_at")
        return await recurring.start_series(conn, row, sched)
    if sched is not None or stop_at is not None:
        raise bad_request("scheduled_for and stop_at do not apply to a triggered campaign: start it when it"
                          " should listen, stop it when it should not")
    return await triggered.start_listening(conn, row)


async def on_transition(conn: Tx, before: asyncpg.Record, action: str) -> list[str]:
    """Before stop/pause/resume of a triggered campaign (locked FOR UPDATE): its occurrences
    follow it (and are refused one by one). Returns the occurrences to kick on resume."""
    if before["type"] != "triggered":
        return []
    if before["parent_id"] is not None:
        raise bad_request(f"campaign {before['id']!r} is an occurrence of {before['parent_id']!r}:"
                          f" {action} that one, its occurrences follow it")
    return await occurrences.follow_status(conn, before, action)


async def on_delete(conn: Tx, row: asyncpg.Record) -> None:
    await events.delete_for(conn, row["app_id"], row["id"])
    if row["type"] == "triggered":
        if row["parent_id"] is not None:
            raise bad_request(f"campaign {row['id']!r} is an occurrence of {row['parent_id']!r}: delete that one")
        await runs.delete_runs(conn, row["app_id"], row["id"])
    if row["type"] == "recurring":
        live = await runs.live_runs(conn, row["app_id"], row["id"])
        if live:
            raise bad_request(f"cannot delete a recurring campaign while its run {live[0]['id']!r} is live: stop it first")
        await runs.delete_runs(conn, row["app_id"], row["id"])


@routes.get("/campaigns/{id}/runs", name="QueryCampaignRuns")
async def query_runs(request: web.Request) -> web.Response:
    """The runs of a recurring campaign, or the occurrences (2, 3, ...) of a triggered one with
    once_per_user false, newest first: {"runs": [campaign objects], "next"?}."""
    app = current_app(request)
    pool = request.app[POOL]
    parent = await campaigns.get(pool, app.id, request.match_info["id"])
    if parent["type"] == "one_time":
        raise bad_request(f"campaign {parent['id']!r} is not recurring or triggered (type 'one_time'): it has no runs")
    limit = cursors.limit_of(request.query.get("limit"), "limit", default=25, hi=100)
    secret = request.app[SETTINGS].cursor_secret
    req = cursors.begin(request.query, ("runs", app.id, parent["id"]), {}, secret, limit=limit)
    after = None
    if req.position is not None:
        if len(req.position) != 1 or isinstance(req.position[0], bool) or not isinstance(req.position[0], int):
            raise bad_request("next/prev is not a cursor of this list")
        after = req.position[0]
    rows = await runs.page(pool, app.id, parent["id"], after, limit + 1, backwards=req.backwards)
    page, links = cursors.finish(req, list(rows), lambda r: [r["run_no"]], secret)
    stats = await ledger.stats_many(pool, app.id, [r["id"] for r in page])
    rel = await campaign_view.related(pool, app.id, page, user_limit=None)
    out: dict[str, Any] = {"runs": [campaigns.view(r, stats.get(r["id"]), **rel[r["id"]]) for r in page], **links}
    return ok(request, out)


async def family_recipients(
    pool: Any, app_id: int, camp: asyncpg.Record, fam: list[str], req: cursors.PageRequest, status: str | None,
    secret: str,
) -> dict[str, Any]:
    """GET /campaigns/{id}/recipients of a repeating triggered campaign: its occurrences' rows
    too, each with its campaign_id, paged by (target, occurrence)."""
    req = dataclasses.replace(req, position=family_views.widen(req.position, fam, req.backwards))
    pos = cursors.typed_position(req, ["text", "text"])
    rows = await family_views.recipients(pool, app_id, fam, status, planned=bool(camp["planned"]),
                                             position=pos, backwards=req.backwards, limit=req.limit + 1)
    page, links = cursors.finish(req, rows, lambda r: [r["target_id"], r["campaign_id"]], secret)
    return {"recipients": [{**ledger.row_view(r), "campaign_id": r["campaign_id"]} for r in page], **links}

"""Recurring series: the runs (child campaigns) and occurrences of a parent campaign."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from broadcaster.domain import series
from broadcaster.store import campaigns
from broadcaster.store.ledger import Conn, Tx

LIVE = ("scheduled", "in_progress", "paused")


async def due_series(conn: Conn) -> list[asyncpg.Record]:
    """Series with an occurrence due by PostgreSQL's clock (the partial index serves it)."""
    return await conn.fetch(
        "SELECT app_id, id FROM campaigns WHERE type = 'recurring'"
        " AND status IN ('scheduled', 'paused') AND next_run_at <= now()")


async def ended_series(conn: Conn) -> list[asyncpg.Record]:
    """Scheduled series with no occurrence left and no run still live: ready to complete."""
    return await conn.fetch(
        "SELECT p.app_id, p.id FROM campaigns p WHERE p.status = 'scheduled' AND p.type = 'recurring'"
        " AND p.next_run_at IS NULL AND NOT EXISTS (SELECT 1 FROM campaigns c WHERE c.app_id = p.app_id"
        " AND c.parent_id = p.id AND c.status IN ('scheduled', 'in_progress', 'paused'))")


async def create_run(conn: Tx, parent: asyncpg.Record, run_no: int) -> asyncpg.Record:
    """Run n as a draft copy of the parent's current content (one_time, parent_id, run_no);
    the unique (app_id, parent_id, run_no) index refuses a second run n."""
    cols = ", ".join(campaigns.EDITABLE_CONTENT)
    r = await conn.fetchrow(
        f"INSERT INTO campaigns (app_id, id, {cols}, type, parent_id, run_no)"
        f" SELECT app_id, $3, {cols}, 'one_time', id, $4 FROM campaigns WHERE app_id = $1 AND id = $2"
        f" RETURNING {campaigns.COLUMNS}",
        parent["app_id"], parent["id"], series.run_id(parent["id"], run_no), run_no,
    )
    assert r is not None
    return r


async def record(conn: Tx, parent: asyncpg.Record, due: datetime, status: str, *,
                 reason: str | None = None, run_no: int | None = None) -> None:
    await conn.execute(
        "INSERT INTO campaign_occurrences (app_id, campaign_id, due_at, status, reason, run_no)"
        " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        parent["app_id"], parent["id"], due, status, reason, run_no)


async def advance(conn: Tx, parent: asyncpg.Record, next_run_at: datetime | None, runs_started: int,
                  *, started: bool) -> asyncpg.Record:
    r = await conn.fetchrow(
        "UPDATE campaigns SET next_run_at = $3, runs_started = $4, updated_at = now()"
        + (", started_at = coalesce(started_at, now())" if started else "")
        + f" WHERE app_id = $1 AND id = $2 RETURNING {campaigns.COLUMNS}",
        parent["app_id"], parent["id"], next_run_at, runs_started)
    assert r is not None
    return r


async def set_series_status(conn: Tx, parent: asyncpg.Record, status: str, event: str | None,
                            next_run_at: datetime | None) -> asyncpg.Record:
    r = await conn.fetchrow(
        "UPDATE campaigns SET status = $3, next_run_at = $4, updated_at = now()"
        + (", completed_at = now()" if status == "completed" else "")
        + f" WHERE app_id = $1 AND id = $2 RETURNING {campaigns.COLUMNS}",
        parent["app_id"], parent["id"], status, next_run_at)
    assert r is not None
    if event:
        await campaigns.add_event(conn, r, event)
    return r


async def live_runs(conn: Tx, app_id: int, parent_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {campaigns.COLUMNS} FROM campaigns WHERE app_id = $1 AND parent_id = $2"
        " AND status IN ('scheduled', 'in_progress', 'paused') ORDER BY run_no FOR UPDATE", app_id, parent_id)


async def page(
    conn: Conn, app_id: int, parent_id: str, after: int | None, limit: int, *, backwards: bool = False,
) -> list[asyncpg.Record]:
    """Runs newest first (run_no descending) after the position `after`; backwards: the runs
    before it, oldest of them first (the pagination helper reverses them)."""
    q = "SELECT {cols} FROM campaigns WHERE app_id = $1 AND parent_id = $2 AND ($3::int IS NULL OR run_no {op} $3)" \
        " ORDER BY run_no {dir} LIMIT $4"
    sql = q.format(cols=campaigns.COLUMNS, op=">" if backwards else "<", dir="ASC" if backwards else "DESC")
    return await conn.fetch(sql, app_id, parent_id, after, limit)


async def delete_runs(conn: Tx, app_id: int, parent_id: str) -> None:
    # one set-based delete however many runs or occurrences (a triggered family can have one per event)
    ids = [r["id"] for r in await conn.fetch(
        "SELECT id FROM campaigns WHERE app_id = $1 AND parent_id = $2 FOR UPDATE", app_id, parent_id)]
    if ids:
        await campaigns.delete(conn, app_id, ids)
    await conn.execute("DELETE FROM campaign_occurrences WHERE app_id = $1 AND campaign_id = $2", app_id, parent_id)


async def occurrence_counts(conn: Conn, app_id: int, parent_id: str) -> dict[str, Any]:
    rows = await conn.fetch(
        "SELECT status, coalesce(reason, '') AS reason, count(*) AS n FROM campaign_occurrences"
        " WHERE app_id = $1 AND campaign_id = $2 GROUP BY 1, 2", app_id, parent_id)
    return {f"{r['status']}{':' + r['reason'] if r['reason'] else ''}": int(r["n"]) for r in rows}

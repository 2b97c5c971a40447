"""Recurring series (SPEC 5A): the use cases of a series (start, pause, resume, stop) and of
the 1 s tick (jobs/recurring.py) that starts its runs.

The tick reads "now" from PostgreSQL and each due series under its row lock (FOR UPDATE,
re-checked after locking), so two workers never handle one occurrence twice, and the unique
(app_id, parent_id, run_no) index makes a second run n impossible even if they did. A run is
created by copying the parent and starting it through campaigns.start, the one start path,
with a planner (services/planning.py) opened before that transaction commits: its audience is
the one of that instant, copied in the background after the commit (the tick does not wait
for it), with its own ledger, stats and campaign.* events. A worker killed mid-copy leaves
the run in progress, unplanned and its planning lock free: the campaign tick's reap redoes
the copy, and re-enqueues batches whose lease ended.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import NamedTuple

import asyncpg

from broadcaster import lifecycle
from broadcaster.domain import schedule, series
from broadcaster.errors import ApiError
from broadcaster.services import planning
from broadcaster.store import campaigns, recipients, runs
from broadcaster.store.ledger import Tx

logger = logging.getLogger("broadcaster.services.recurring")
MAX_OCCURRENCES_PER_TICK = 1000  # a series missed for years is skipped over several ticks


async def db_now(conn: Tx) -> datetime:
    return await conn.fetchval("SELECT now()")  # type: ignore[no-any-return]


async def start_series(conn: Tx, row: asyncpg.Record, not_before: datetime | None) -> asyncpg.Record:
    """start on a recurring draft (locked FOR UPDATE): scheduled, its first occurrence set
    (the first after now, or after scheduled_for when that is later)."""
    lifecycle.check("start", row["status"])
    now = await db_now(conn)
    first = schedule.next_after(schedule.parse(row["schedule"]), max(now, not_before) if not_before else now)
    return await runs.set_series_status(conn, row, "scheduled", None, first)


EVENTS = {"pause": "campaign.paused", "resume": "campaign.resumed", "stop": "campaign.stopped"}


async def transition(conn: Tx, row: asyncpg.Record, action: str) -> asyncpg.Record:
    """pause / resume / stop a series (locked FOR UPDATE); stop also stops its live run."""
    new = series.series_after(action, row["status"])
    nxt: datetime | None = None
    if action == "resume":
        s = schedule.parse(row["schedule"])
        nxt = schedule.next_after(s, await db_now(conn), int(row["runs_started"]))
    elif action == "pause":
        nxt = row["next_run_at"]  # occurrences that come due while paused are skipped
    if action == "stop":
        for run in await runs.live_runs(conn, row["app_id"], row["id"]):
            await campaigns.set_status(conn, run, "stop", event="campaign.stopped")
    return await runs.set_series_status(conn, row, new, EVENTS[action], nxt)


async def _start_run(conn: Tx, parent: asyncpg.Record, run_no: int, dsn: str) -> Started | None:
    """Run n, started now with its planner open (its snapshot taken before this transaction
    commits the start); None (and the occurrence skipped) when its audience's kind cannot be
    read."""
    planner: planning.Planner | None = None
    try:
        async with conn.transaction():  # a savepoint: a refused audience leaves no run row
            child = await runs.create_run(conn, parent, run_no)
            kind = "user"
            if child["segment_ids"]:
                kind = (await recipients.load_audience(conn, child["app_id"], child["segment_ids"],
                                                       child["sender_id"])).kind
            planner = await planning.Planner.open(dsn, child["app_id"], child["id"])
            return Started(await campaigns.start(conn, child, kind, None, None), planner)
    except ApiError as e:
        if planner is not None:
            planner.close()
        logger.warning("recurring run not started: its audience cannot be fixed",
                       extra={"fields": {"campaign": parent["id"], "run_no": run_no, "error": e.message}})
        return None
    except BaseException:
        if planner is not None:
            planner.close()
        raise


async def handle_due(conn: Tx, app_id: int, cid: str, dsn: str) -> Started | None:
    """Handle the due occurrences of one series; returns the run started (committed), if any,
    with the planner to hand to planning.begin. At most one run per call: a later occurrence
    also due is handled by the next tick."""
    started: Started | None = None
    try:
        async with conn.transaction():
            row = await campaigns.get(conn, app_id, cid, lock="UPDATE")
            now = await db_now(conn)
            if row["type"] != "recurring" or row["status"] not in ("scheduled", "paused"):
                return None
            s = schedule.parse(row["schedule"])
            n = int(row["runs_started"])
            due = row["next_run_at"]
            for _ in range(MAX_OCCURRENCES_PER_TICK):
                if due is None or due > now or started is not None:
                    break
                outcome = series.occurrence_outcome(row["status"], due, now, s.catch_up)
                if outcome == "start":
                    started = await _start_run(conn, row, n + 1, dsn)
                    if started is not None:
                        n += 1
                        await runs.record(conn, row, due, "started", run_no=n)
                    else:
                        await runs.record(conn, row, due, "skipped", reason="audience_error")
                else:
                    await runs.record(conn, row, due, "skipped", reason=outcome)
                due = schedule.next_after(s, due, n)
            await runs.advance(conn, row, due, n, started=started is not None)
    except BaseException:
        if started is not None:
            started.planner.close()
        raise
    return started


async def complete_ended(conn: Tx, app_id: int, cid: str) -> None:
    async with conn.transaction():
        row = await campaigns.get(conn, app_id, cid, lock="UPDATE")
        if row["status"] == "scheduled" and row["next_run_at"] is None and not await runs.live_runs(conn, app_id, cid):
            await runs.set_series_status(conn, row, "completed", "campaign.completed", None)


class Started(NamedTuple):
    run: asyncpg.Record
    planner: planning.Planner

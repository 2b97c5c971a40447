"""Fixing a starting campaign's audience outside the start request (SPEC 5: "the audience is
fixed when the campaign starts", and `stats_recipients_total` exact once planning ends).

Copying the audience inside the start call took 11 s at 5M recipients and 89 s at 10M: past
the stream-chat SDK's 6 s client timeout, and the reason the API's command timeout was 120 s.
Now the start call:

1. opens the planner: a connection of its own, a REPEATABLE READ transaction whose first
   statement takes the campaign's planning lock (an advisory lock) and with it the snapshot;
2. then flips the campaign to in_progress, not planned, in its own transaction, and commits;
3. copies the audience and its batch boundaries under the planner's snapshot in a task of
   the API process (store/recipients.fix), records the counts in campaign_plans and commits;
   then marks the campaign planned (recipients_total exact) and enqueues its batches.

The request waits up to `start_wait_s` for step 3 (a small audience answers planned), then
answers the campaign in progress with its audience still being fixed. The snapshot predates
the status change, so targets added to the segments after the start call are not in the
audience and targets removed after it are, however long the copy takes; nothing waits for it
either (the segments are not locked).

Recovery (`reap`, from the 1 s tick): a campaign in progress or paused, not planned, whose
planning lock is free has lost its planner (the API process died; PostgreSQL rolled the
planner back when its connection closed). When campaign_plans holds its counts, only the
marking was lost and it is done now. Otherwise the copy is redone from the segments as they
are at that moment: the one case in which the audience is not the start call's (targets
added between the start and the recovery receive it, targets removed in between do not).
It is logged as a warning.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import asyncpg
from arq.connections import ArqRedis

from broadcaster import db
from broadcaster.errors import ApiError
from broadcaster.services import campaigns as use_cases
from broadcaster.store import audience_plans, campaigns, recipients
from broadcaster.store.ledger import Tx

logger = logging.getLogger("broadcaster.services.planning")
# The copy's own bound (the pools' command timeouts are for requests): 10M took 89 s.
PLAN_TIMEOUT_S = 6 * 3600.0
Flip = Callable[[Tx, asyncpg.Record], Awaitable[asyncpg.Record]]


class Planner:
    """A connection in a REPEATABLE READ transaction holding a campaign's planning lock."""

    def __init__(self, conn: asyncpg.Connection, tr: asyncpg.transaction.Transaction) -> None:
        self.conn, self.tr = conn, tr

    @classmethod
    async def open(cls, dsn: str, app_id: int, cid: str) -> Planner:
        """Waits for the campaign's planning lock (the start call: nobody else plans a draft)."""
        planner = await cls._open(dsn, app_id, cid, wait=True)
        assert planner is not None
        return planner

    @classmethod
    async def try_open(cls, dsn: str, app_id: int, cid: str) -> Planner | None:
        """None when another planner holds the lock (the tick never waits for one)."""
        return await cls._open(dsn, app_id, cid, wait=False)

    @classmethod
    async def _open(cls, dsn: str, app_id: int, cid: str, *, wait: bool) -> Planner | None:
        conn = await db.connect(dsn)
        try:
            # A planner whose process died stops within a second, even mid-copy, instead of
            # copying on for nobody (and holding the lock the tick's recovery waits for).
            await conn.execute("SET client_connection_check_interval = 1000")
            tr = conn.transaction(isolation="repeatable_read")
            await tr.start()
            # The first statement: it takes the snapshot.
            if wait:
                await audience_plans.hold(conn, app_id, cid)
            elif not await audience_plans.try_hold(conn, app_id, cid):
                conn.terminate()
                return None
        except BaseException:
            conn.terminate()
            raise
        return cls(conn, tr)

    async def copy(self, r: asyncpg.Record, batch_size: int) -> None:
        total, batches = await _fix(self.conn, r, batch_size)
        await audience_plans.record(self.conn, r["app_id"], r["id"], total, batches)
        await self.tr.commit()

    def close(self) -> None:
        """Uncommitted work is rolled back by the server when the connection closes."""
        self.conn.terminate()


async def _fix(conn: Tx, r: asyncpg.Record, batch_size: int) -> tuple[int, int]:
    return await recipients.fix(
        conn, r["app_id"], r["id"], kind=r["kind"] or "user", segment_ids=r["segment_ids"],
        user_ids=r["user_ids"], sender_id=r["sender_id"], batch_size=batch_size,
        lease_s=campaigns.QUEUED_LEASE_S, snapshot=True, timeout=PLAN_TIMEOUT_S)


def _needs_plan(r: asyncpg.Record) -> bool:
    return r["type"] != "triggered" and r["status"] == "in_progress" and not r["planned"]


Tasks = set[asyncio.Task[object]]


def begin(planner: Planner, pool: asyncpg.Pool, redis: ArqRedis, r: asyncpg.Record, batch_size: int,
          tasks: Tasks) -> asyncio.Task[object]:
    """Copy campaign `r`'s audience under `planner` in a task of this process (kept in
    `tasks`, which its process cancels at shutdown: rolled back, and redone by reap)."""
    task: asyncio.Task[object] = asyncio.create_task(_plan(planner, pool, redis, r, batch_size))
    tasks.add(task)
    task.add_done_callback(tasks.discard)
    return task


async def start(
    pool: asyncpg.Pool, redis: ArqRedis, dsn: str, app_id: int, cid: str, flip: Flip, *,
    batch_size: int, wait_s: float, tasks: Tasks,
) -> asyncpg.Record:
    """Start campaign `cid`: `flip` gets the row locked FOR UPDATE and changes its status
    (store/campaigns.start with fix=False, or a series' start). Returns the campaign as it
    is when planning ended or after `wait_s`, whichever comes first; a planning that failed
    within the wait raises its error (the campaign was stopped)."""
    planner = await Planner.open(dsn, app_id, cid)
    try:
        async with pool.acquire() as conn:
            async with conn.transaction():
                r = await flip(conn, await campaigns.get(conn, app_id, cid, lock="UPDATE"))
            if not _needs_plan(r):
                planner.close()
                if r["status"] == "in_progress":
                    await use_cases.kick(redis, conn, app_id, r["id"], all_open=True)
                return r
    except BaseException:
        planner.close()
        raise
    task = begin(planner, pool, redis, r, batch_size, tasks)
    done, _ = await asyncio.wait({task}, timeout=wait_s)
    if task not in done:
        return r
    out = task.result()
    if isinstance(out, ApiError):
        raise out
    return await campaigns.get(pool, app_id, cid)


async def fire(pool: asyncpg.Pool, conn: Tx, redis: ArqRedis, dsn: str, app_id: int, cid: str,
               batch_size: int, tasks: Tasks) -> None:
    """From the tick: a scheduled start that is due. As the start call (snapshot, then the
    status change, then the copy in the background), without waiting: the tick goes on to
    the other campaigns while the copy runs. A planner of another worker's tick holding the
    lock is starting it already; the status is re-checked under the row lock after the
    snapshot, so two ticks never start it twice."""
    planner = await Planner.try_open(dsn, app_id, cid)
    if planner is None:
        return
    try:
        async with conn.transaction():
            row = await campaigns.get(conn, app_id, cid, lock="UPDATE")
            if row["status"] != "scheduled":
                planner.close()
                return
            r = await campaigns.fire(conn, row)
    except BaseException:
        planner.close()
        raise
    begin(planner, pool, redis, r, batch_size, tasks)


async def _plan(planner: Planner, pool: asyncpg.Pool, redis: ArqRedis, r: asyncpg.Record,
                batch_size: int) -> object:
    """The task: copy, commit, mark, enqueue. Returns the ApiError that stopped the campaign
    (an audience PostgreSQL cannot evaluate), or None."""
    app_id, cid = r["app_id"], r["id"]
    try:
        try:
            await planner.copy(r, batch_size)
        finally:
            planner.close()
    except ApiError as e:
        await _refused(pool, app_id, cid, e)
        return e
    except Exception:
        logger.exception("audience copy failed; the tick redoes it", extra={"fields": {"campaign": cid}})
        return None
    async with pool.acquire() as conn:
        await _kick(conn, redis, await audience_plans.mark(conn, app_id, cid))
    return None


async def _kick(conn: Tx, redis: ArqRedis, marked: asyncpg.Record | None) -> None:
    """Enqueue the batches of a campaign just marked planned (after its commit)."""
    if marked is not None and marked["status"] == "in_progress":
        await use_cases.kick(redis, conn, marked["app_id"], marked["id"], all_open=True)


async def _refused(pool: asyncpg.Pool, app_id: int, cid: str, e: ApiError) -> None:
    logger.warning("campaign stopped: its audience cannot be fixed",
                   extra={"fields": {"campaign": cid, "error": e.message}})
    async with pool.acquire() as conn:
        try:
            await use_cases.stop(conn, app_id, cid)
        except ApiError:
            pass  # stopped or deleted meanwhile


def _unplanned(row: asyncpg.Record) -> bool:
    return not row["planned"] and row["status"] in ("in_progress", "paused") and row["type"] != "triggered"


async def reap(pool: asyncpg.Pool, conn: Tx, redis: ArqRedis, app_id: int, cid: str, batch_size: int,
               dsn: str, tasks: Tasks) -> None:
    """From the tick, for a campaign in progress or paused and not planned: nothing while its
    planner holds the lock; else finish what the planner left (see the module's docstring):
    a recorded plan is marked here, a copy is redone by a planner of this process in the
    background, so the tick never copies an audience itself."""
    async with conn.transaction():
        if not await audience_plans.try_hold(conn, app_id, cid):
            return
        row = await campaigns.get(conn, app_id, cid, lock="UPDATE")
        if not _unplanned(row):
            return
        recorded = await audience_plans.recorded(conn, app_id, cid)
        marked = await audience_plans.mark(conn, app_id, cid) if recorded else None
    if recorded:
        await _kick(conn, redis, marked)
        return
    planner = await Planner.try_open(dsn, app_id, cid)
    if planner is None:
        return
    try:
        # Under the planner's own snapshot: another tick's planner may have recorded it since.
        row = await campaigns.get(planner.conn, app_id, cid)
        if not _unplanned(row) or await audience_plans.recorded(planner.conn, app_id, cid):
            planner.close()
            return
    except BaseException:
        planner.close()
        raise
    logger.warning("audience copy interrupted (its process died): fixing it again from the segments"
                   " as they are now", extra={"fields": {"campaign": cid}})
    begin(planner, pool, redis, row, batch_size, tasks)

"""Campaign use cases: create, update, delete, start (its audience: services/planning.py), stop, pause,
resume, test, exclude a recipient, kick (enqueue open batches), complete, and the tick's
scheduled work. Called by api/campaigns.py and jobs/campaigns.py; the store holds the SQL."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

import asyncpg
from arq.connections import ArqRedis

from broadcaster import lifecycle
from broadcaster.domain.links import Tracking
from broadcaster.errors import ApiError, bad_request, not_found
from broadcaster.services import policy, sending, winner
from broadcaster.store import campaigns, fanout, ledger, recipients
from broadcaster.store.ledger import Tx

logger = logging.getLogger("broadcaster.services.campaigns")
EVENTS = {"stop": "campaign.stopped", "pause": "campaign.paused", "resume": "campaign.resumed"}


async def enqueue_batch(redis: ArqRedis, app_id: int, cid: str, no: int, tries: int) -> None:
    await redis.enqueue_job("campaign_batch", app_id, cid, no, _job_id=f"batch:{app_id}:{cid}:{no}:{tries}")


async def kick(redis: ArqRedis, conn: Tx, app_id: int, cid: str, *, all_open: bool) -> None:
    """(Re-)enqueue the open batches of an in-progress campaign (all of them after a start or
    resume, only the lost ones from the tick). Its audience and batches were fixed at start."""
    camp = await campaigns.get(conn, app_id, cid)
    if camp["status"] != "in_progress":
        return
    lost = await (fanout.requeue_open(conn, app_id, cid) if all_open else fanout.open_batches(conn, app_id, cid))
    for no, tries in lost:
        await enqueue_batch(redis, app_id, cid, no, tries)
    if all_open and not lost:  # an empty audience, or a resume with every batch done
        await complete(conn, app_id, cid)


async def complete(conn: Tx, app_id: int, cid: str) -> bool:
    """Complete the campaign if every batch is done (idempotent); an A/B test with a winner
    moves on to its wait and its second pass instead (services/winner.py)."""
    await winner.step(conn, app_id, cid)
    return await campaigns.try_complete(conn, app_id, cid)


async def create(pool: asyncpg.Pool, app_id: int, cid: str, data: dict[str, Any]) -> asyncpg.Record:
    return await campaigns.create(pool, app_id, cid, data)


async def update(pool: asyncpg.Pool, app_id: int, cid: str, data: dict[str, Any]) -> asyncpg.Record:
    async with pool.acquire() as conn, conn.transaction():
        row = await campaigns.get(conn, app_id, cid, lock="UPDATE")
        lifecycle.check("update", row["status"])
        return await campaigns.update(conn, app_id, cid, data)


async def flip_start(conn: Tx, row: asyncpg.Record, scheduled_for: datetime | None,
                     stop_at: datetime | None) -> asyncpg.Record:
    """Start now or schedule a one-time draft locked FOR UPDATE, leaving its audience to the
    planner that took its snapshot before (services/planning.start)."""
    lifecycle.check("start", row["status"])
    kind = "user"
    if row["segment_ids"]:
        kind = (await recipients.load_audience(conn, row["app_id"], row["segment_ids"], row["sender_id"])).kind
    scheduled_for, wall = await policy.local_start(
        conn, row["app_id"], row, await fanout.app_settings(conn, row["app_id"]), scheduled_for)
    return await campaigns.start(conn, row, kind, scheduled_for, stop_at, wall)


async def transition(pool: asyncpg.Pool, redis: ArqRedis, app_id: int, cid: str, action: str) -> asyncpg.Record:
    """stop, pause or resume. FOR UPDATE waits for in-flight batches (they hold KEY SHARE until
    they commit), so nothing is sent after a stop or pause returns."""
    async with pool.acquire() as conn:
        async with conn.transaction():
            row = await campaigns.get(conn, app_id, cid, lock="UPDATE")
            r = await campaigns.set_status(conn, row, action, event=EVENTS[action])
        if action == "resume":
            await kick(redis, conn, app_id, r["id"], all_open=True)
    return r


async def stop(conn: Tx, app_id: int, cid: str) -> asyncpg.Record:
    async with conn.transaction():
        row = await campaigns.get(conn, app_id, cid, lock="UPDATE")
        return await campaigns.set_status(conn, row, "stop", event=EVENTS["stop"])


async def test(
    pool: asyncpg.Pool, app_id: int, cid: str, users: list[str], tracking: Tracking | None = None,
) -> tuple[asyncpg.Record, list[dict[str, Any]]]:
    """A test send; over the template budget it is refused and nothing of it is kept."""
    row = await campaigns.get(pool, app_id, cid)
    await asyncio.to_thread(sending.templates_for, row)  # a cache miss compiles: off the event loop
    async with pool.acquire() as conn, conn.transaction():
        events = fanout.webhooks_enabled(row, await fanout.app_settings(conn, app_id))
        sent = await sending.send_test(conn, row, users, events, tracking)
        over = next((s for s in sent if str(s.get("error") or "").startswith("template_budget")), None)
        if over is not None:  # raised inside the transaction: rolled back
            raise bad_request(f"test send refused, user {over['user_id']!r}: {over['error']}")
    return row, sent


async def exclude(pool: asyncpg.Pool, app_id: int, cid: str, target: str) -> None:
    async with pool.acquire() as conn, conn.transaction():
        row = await campaigns.get(conn, app_id, cid, lock="UPDATE")
        if row["status"] in ("completed", "stopped"):
            raise bad_request(f"cannot remove a recipient of a campaign whose status is {row['status']!r}")
        if row["planned"] and not await ledger.in_audience(conn, app_id, row["id"], target):
            raise not_found(f"recipient {target!r} of campaign {row['id']!r}")
        await ledger.exclude(conn, app_id, row["id"], target)


async def tick(pool: asyncpg.Pool, redis: ArqRedis, batch_size: int, dsn: str,
               planners: set[asyncio.Task[object]]) -> None:
    """Every second: scheduled starts and stop_at that are due, lost batches, stuck completions.
    No audience is copied here: a due start and a lost copy are planned in the background
    (services/planning.py, its tasks in `planners`), so the tick stays a second long."""
    from broadcaster.services import planning  # it imports this module

    async with pool.acquire() as conn:
        for app_id, cid, no in await policy.release(conn):  # held recipients now due
            await enqueue_batch(redis, app_id, cid, no, 0)
        for r in await campaigns.due(conn):
            app_id, cid = r["app_id"], r["id"]
            try:
                if r["stop_due"]:
                    await stop(conn, app_id, cid)
                elif r["status"] == "scheduled" and r["start_due"]:
                    await planning.fire(pool, conn, redis, dsn, app_id, cid, batch_size, planners)
                elif r["status"] in ("in_progress", "paused") and not r["planned"] and r["type"] != "triggered":
                    await planning.reap(pool, conn, redis, app_id, cid, batch_size, dsn, planners)
                elif r["status"] == "in_progress":
                    await kick(redis, conn, app_id, cid, all_open=False)
                    await complete(conn, app_id, cid)
            except ApiError:
                continue  # deleted or changed meanwhile
            except Exception:
                logger.exception("campaign tick failed", extra={"fields": {"campaign": cid}})

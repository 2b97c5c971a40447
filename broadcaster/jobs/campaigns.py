"""Campaign jobs: one job per batch, and the 1 s tick.

Every job is idempotent. PostgreSQL holds the truth (status, batch boundaries, done flags,
leases); Redis only carries jobs, so a lost job (worker SIGKILLed, Redis restarted) is found
by the tick through its expired lease and enqueued again under a new job id.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import asyncpg
from arq import cron
from arq.connections import ArqRedis

from broadcaster import metrics, pressure, sendrate
from broadcaster.appconfig import capped
from broadcaster.domain.links import Tracking
from broadcaster.errors import ApiError
from broadcaster.services import sending
from broadcaster.store import campaigns, fanout
from broadcaster.store import channels as chat_store
from broadcaster.store.ledger import Tx

logger = logging.getLogger("broadcaster.jobs.campaigns")


async def enqueue_batch(redis: ArqRedis, app_id: int, cid: str, no: int, tries: int) -> None:
    await redis.enqueue_job("campaign_batch", app_id, cid, no, _job_id=f"batch:{app_id}:{cid}:{no}:{tries}")


async def kick(redis: ArqRedis, conn: Tx, app_id: int, cid: str, *, all_open: bool) -> None:
    """(Re-)enqueue the open batches of an in-progress campaign (all of them after a start or
    resume, only the lost ones from the tick). Its audience and batches were fixed at start."""
    camp = await campaigns.get(conn, app_id, cid)
    if camp["status"] != "in_progress":
        return
    if all_open:
        rows = await conn.fetch(
            "UPDATE campaign_batches SET tries = tries + 1,"
            f" lease_until = now() + interval '{fanout.QUEUED_LEASE_S} s'"
            " WHERE app_id = $1 AND campaign_id = $2 AND NOT done RETURNING batch_no, tries", app_id, cid,
        )
        lost = [(r[0], r[1]) for r in rows]
    else:
        lost = await fanout.open_batches(conn, app_id, cid)
    for no, tries in lost:
        await enqueue_batch(redis, app_id, cid, no, tries)
    if all_open and not lost:  # an empty audience, or a resume with every batch done
        await campaigns.try_complete(conn, app_id, cid)


# A batch over its app's share of this worker's slots comes back this much later.
SHARE_DEFER_S = 0.25
LIVE_APPS_CACHE_S = 1.0


class Slots:
    """This process's running batches per app, and (cached) which apps have campaigns in
    progress: an app at its share of the slots yields them while another app has work."""

    def __init__(self) -> None:
        self.running: dict[int, int] = {}
        self._live: set[int] = set()
        self._at = -LIVE_APPS_CACHE_S

    async def others_have_work(self, conn: Tx, app_id: int) -> bool:
        now = time.monotonic()
        if now - self._at >= LIVE_APPS_CACHE_S:
            self._live = await campaigns.live_apps(conn)
            self._at = now
        return bool(self._live - {app_id})


SLOTS = Slots()


async def _defer(
    redis: ArqRedis, conn: Tx, app_id: int, cid: str, no: int, seconds: float, reserved: bool,
) -> str:
    """Hand the batch back to the queue for `seconds` (the job ends, its slot is free). The
    lease covers the wait, so the tick does not take the batch for lost meanwhile."""
    if await fanout.lease(conn, app_id, cid, no, seconds + fanout.QUEUED_LEASE_S) is None:
        return "done"
    await redis.enqueue_job("campaign_batch", app_id, cid, no, reserved, _defer_by=seconds,
                            _job_id=f"batch:{app_id}:{cid}:{no}:d{time.time_ns()}")
    return "deferred"


async def campaign_batch(
    ctx: dict[str, Any], app_id: int, cid: str, no: int, reserved: bool = False,
) -> str:
    """reserved: this run already holds its send-rate tokens (it was deferred for them)."""
    pool, redis, settings = ctx["pool"], ctx["redis"], ctx["settings"]
    cap = max(1, int(settings.app_slot_share * settings.worker_max_jobs))
    async with pool.acquire() as conn:
        SLOTS.running[app_id] = SLOTS.running.get(app_id, 0) + 1
        try:
            if SLOTS.running[app_id] > cap and await SLOTS.others_have_work(conn, app_id):
                return await _defer(redis, conn, app_id, cid, no, SHARE_DEFER_S, reserved)
            outcome, maybe_last = await _run_batch(conn, redis, app_id, cid, no, settings.queue_name, reserved,
                                                   settings.max_send_rate, settings.tracking)
        finally:
            SLOTS.running[app_id] -= 1
        # Only a batch that saw no other open batch tries to complete the campaign (3 round
        # trips saved per batch); a race between two last batches leaves it to the 1 s tick.
        if outcome == "ok" and maybe_last:
            await campaigns.try_complete(conn, app_id, cid)
    return outcome


async def _run_batch(
    conn: Tx, redis: ArqRedis, app_id: int, cid: str, no: int, queue: str, reserved: bool,
    max_send_rate: float = 0.0, tracking: Tracking | None = None,
) -> tuple[str, bool]:
    try:
        camp = await campaigns.get(conn, app_id, cid)
    except ApiError:
        return "gone", False
    if camp["status"] != "in_progress":
        return "inactive", False
    # Lease first: a worker killed at any point after this is noticed when the lease ends.
    n = await fanout.lease(conn, app_id, cid, no)
    if n is None:
        return "done", False
    app_settings = await fanout.app_settings(conn, app_id)
    if not reserved:
        rate = capped(float(app_settings.get("campaign_send_rate") or 0), max_send_rate)  # the operator's ceiling
        wait = await sendrate.reserve(redis, app_id, rate, n)
        if wait > 0:  # the tokens are ours from then on: come back at that time, holding no slot
            return await _defer(redis, conn, app_id, cid, no, wait, True), False
    events = fanout.webhooks_enabled(camp, app_settings)
    await pressure.mark_busy(redis, queue)
    async with conn.transaction():
        camp = await campaigns.get(conn, app_id, cid, lock="KEY SHARE")
        if camp["status"] != "in_progress":
            return "inactive", False
        b = await fanout.batch_row(conn, app_id, cid, no)
        if b is None or b["done"]:
            return "done", False
        sent, errored, skipped, created, others = await sending.write_batch(
            conn, camp, no, b["n"], (b["after_id"], b["upto_id"]), events, tracking)
        if camp["sender_visibility"] or camp["show_channels"]:
            await chat_store.apply_campaign_visibility(
                conn, app_id, cid, camp["sender_id"], camp["sender_visibility"], camp["show_channels"],
                b["after_id"], b["upto_id"])
    metrics.CAMPAIGN_MESSAGES.labels("sent").inc(sent)
    metrics.CAMPAIGN_MESSAGES.labels("errored").inc(errored)
    metrics.CAMPAIGN_MESSAGES.labels("skipped").inc(skipped)
    metrics.CHANNELS_CREATED.inc(created)
    return "ok", not others


async def stop_campaign(conn: Tx, app_id: int, cid: str) -> asyncpg.Record:
    async with conn.transaction():
        row = await campaigns.get(conn, app_id, cid, lock="UPDATE")
        return await campaigns.set_status(conn, row, "stop", event="campaign.stopped")


async def campaign_tick(ctx: dict[str, Any]) -> None:
    """Every second: scheduled starts and stop_at that are due, lost jobs, stuck completions."""
    pool, redis = ctx["pool"], ctx["redis"]
    async with pool.acquire() as conn:
        for r in await campaigns.due(conn):
            app_id, cid = r["app_id"], r["id"]
            try:
                if r["stop_due"]:
                    await stop_campaign(conn, app_id, cid)
                    continue
                if r["status"] == "scheduled" and r["start_due"]:
                    try:
                        async with conn.transaction():
                            row = await campaigns.get(conn, app_id, cid, lock="UPDATE")
                            if row["status"] == "scheduled":
                                await campaigns.fire(conn, row, ctx["settings"].batch_size)
                    except ApiError as e:
                        # Its audience cannot be fixed (e.g. a segment's filter PostgreSQL
                        # cannot evaluate): stopped, not retried every second.
                        logger.warning("scheduled campaign stopped: its audience cannot be fixed",
                                       extra={"fields": {"campaign": cid, "error": e.message}})
                        await stop_campaign(conn, app_id, cid)
                        continue
                    await kick(redis, conn, app_id, cid, all_open=True)
                elif r["status"] == "in_progress":
                    await kick(redis, conn, app_id, cid, all_open=False)
                    await campaigns.try_complete(conn, app_id, cid)
            except ApiError:
                continue  # deleted or changed meanwhile
            except Exception:
                logger.exception("campaign tick failed", extra={"fields": {"campaign": cid}})


FUNCTIONS = [campaign_batch]
CRON = [cron(campaign_tick, second=None, unique=True, timeout=30)]

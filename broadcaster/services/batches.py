"""Running one fan-out batch: the app's share of this worker's slots, its send rate (a batch
that must wait is deferred, never sleeping in a job), then the one send path in one
transaction under a KEY SHARE lock on the campaign (stop/pause take FOR UPDATE)."""

from __future__ import annotations

import time
from typing import Any

from arq.connections import ArqRedis

from broadcaster import ids as idgen
from broadcaster import metrics, pressure, sendrate
from broadcaster.appconfig import capped
from broadcaster.domain.links import Tracking
from broadcaster.errors import ApiError
from broadcaster.services import campaigns as use_cases
from broadcaster.services import sending, triggers
from broadcaster.store import campaigns, fanout, fanwrite
from broadcaster.store import members as member_store
from broadcaster.store.ledger import Tx

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


async def run(pool: Any, redis: ArqRedis, settings: Any, app_id: int, cid: str, no: int, reserved: bool) -> str:
    """reserved: this run already holds its send-rate tokens (it was deferred for them)."""
    cap = max(1, int(settings.app_slot_share * settings.worker_max_jobs))
    async with pool.acquire() as conn:
        SLOTS.running[app_id] = SLOTS.running.get(app_id, 0) + 1
        try:
            if SLOTS.running[app_id] > cap and await SLOTS.others_have_work(conn, app_id):
                return await _defer(redis, conn, app_id, cid, no, SHARE_DEFER_S, reserved)
            outcome, maybe_last, follow = await _run(conn, redis, app_id, cid, no, settings.queue_name, reserved,
                                                     settings.max_send_rate, settings.tracking)
        finally:
            SLOTS.running[app_id] -= 1
            await pressure.mark_done(redis, settings.queue_name, app_id, f"{cid}:{no}")
        if follow is not None:  # a triggered campaign's next batch is dispatched by this one's end
            await triggers.dispatch(conn, redis, app_id, follow, settings.batch_size)
        # Only a batch that saw no other open batch tries to complete the campaign (3 round
        # trips saved per batch); a race between two last batches leaves it to the 1 s tick.
        if outcome == "ok" and maybe_last:
            await use_cases.complete(conn, app_id, cid)
    return outcome


async def _run(
    conn: Tx, redis: ArqRedis, app_id: int, cid: str, no: int, queue: str, reserved: bool,
    max_send_rate: float, tracking: Tracking | None,
) -> tuple[str, bool, str | None]:
    """(outcome, whether it may have been the last open batch, the triggered campaign whose
    next batch this one's end dispatches)."""
    try:
        camp = await campaigns.get(conn, app_id, cid)
    except ApiError:
        return "gone", False, None
    if camp["status"] != "in_progress":
        return "inactive", False, None
    follow = (camp["parent_id"] or camp["id"]) if camp["type"] == "triggered" else None
    # Lease first: a worker killed at any point after this is noticed when the lease ends.
    n = await fanout.lease(conn, app_id, cid, no, durable=False)
    if n is None:
        return "done", False, follow
    app_settings = await fanout.app_settings(conn, app_id)
    if not reserved:
        rate = capped(float(app_settings.get("campaign_send_rate") or 0), max_send_rate)  # the operator's ceiling
        wait = await sendrate.reserve(redis, app_id, rate, n)
        if wait > 0:  # the tokens are ours from then on: come back at that time, holding no slot
            return await _defer(redis, conn, app_id, cid, no, wait, True), False, None
    events = fanout.webhooks_enabled(camp, app_settings)
    await pressure.mark_busy(redis, queue, app_id, f"{cid}:{no}")
    try:
        return await _send(conn, app_id, cid, no, events, tracking, app_settings, follow, contended=False)
    except Exception as e:
        if not fanwrite.pair_taken(e):
            raise
    # a distinct pair of this batch was created concurrently: redone, taking that channel
    return await _send(conn, app_id, cid, no, events, tracking, app_settings, follow, contended=True)


async def _send(
    conn: Tx, app_id: int, cid: str, no: int, events: bool, tracking: Tracking | None,
    app_settings: dict[str, Any], follow: str | None, *, contended: bool,
) -> tuple[str, bool, str | None]:
    async with conn.transaction():
        # The batch commits without waiting for its WAL flush (the writer flushes it within
        # ~0.2 s). A PostgreSQL crash can lose the last such commits; each loses all its rows
        # with its done-record (one transaction), so the tick's expired lease redoes it:
        # still exactly once. What depends on a batch commits durably after it and so flushes
        # it first: the campaign's completion, the webhook pump's claim (docs/scaling.md).
        await conn.execute("SET LOCAL synchronous_commit = off")
        camp = await campaigns.get(conn, app_id, cid, lock="KEY SHARE")
        if camp["status"] != "in_progress":
            return "inactive", False, None
        b = await fanout.batch_row(conn, app_id, cid, no)
        if b is None or b["done"]:
            return "done", False, follow
        sent, errored, skipped, created, others = await sending.write_batch(
            conn, camp, no, b["n"], (b["after_id"], b["upto_id"]), events, tracking, app_settings,
            contended=contended, prefix=idgen.batch_prefix(app_id, cid, no, b["planned_at"]))
        if camp["sender_visibility"] or camp["show_channels"]:
            await member_store.apply_campaign_visibility(
                conn, app_id, cid, camp["sender_id"], camp["sender_visibility"], camp["show_channels"],
                b["after_id"], b["upto_id"])
    metrics.CAMPAIGN_MESSAGES.labels("sent").inc(sent)
    metrics.CAMPAIGN_MESSAGES.labels("errored").inc(errored)
    metrics.CAMPAIGN_MESSAGES.labels("skipped").inc(skipped)
    metrics.CHANNELS_CREATED.inc(created)
    return "ok", not others, follow

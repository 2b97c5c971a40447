"""The webhook dispatcher: outbox -> delivery rows -> signed POSTs, each receiver fed at the
rate it takes.

One pump (an arq cron tick that found a free slot) runs a router, which turns outbox events
into delivery rows (those a receiver has room for come back claimed, sent without a claim
query), and a deliverer (webhooks/deliverer.py) that claims more per receiver as its
adaptive window (webhooks/adapt.py) frees up, sends and records.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
from redis.asyncio import Redis
from redis.exceptions import RedisError

from broadcaster import metrics, pressure
from broadcaster.store import outbox
from broadcaster.store import webhooks as store
from broadcaster.webhooks import fairness, policy
from broadcaster.webhooks.deliverer import CLAIM_MAX, Deliverer
from broadcaster.webhooks.sender import Sender

logger = logging.getLogger("broadcaster.webhooks")

ROUTE_BATCH = 5000
SLOTS = 2  # pumps allowed at once across all workers
PUMP_SECONDS = 50.0
SLOT_TTL_MS = 15_000
TICK_S = 0.01  # claims at most this often: completions in between are claimed for together
IDLE_EXIT_S = 0.5
TRICKLES: dict[str, fairness.Trickle] = {}  # per pump slot, in this process


async def route(pool: asyncpg.Pool, limit: int = ROUTE_BATCH) -> int:
    """Turn outbox events into delivery rows (one per matching receiver); events nobody
    receives are consumed too. Returns the number of events consumed."""
    return (await route_leased(pool, limit, None, None))[0]


Routed = tuple[int, list[dict[str, Any]], bool]  # events consumed, rows claimed, some app waits


async def route_leased(
    pool: asyncpg.Pool, limit: int, lease: float | None,
    take: Callable[[int, str, dict[str, Any]], bool] | None,
    busy: frozenset[int] = frozenset(), trickle: fairness.Trickle | None = None,
) -> Routed:
    """route(), each app with outbox rows getting its share of `limit` (an app whose fan-out
    writes only its trickle); with a lease, the new rows that need not wait and for which
    `take` grants a window slot come back already claimed for their first attempt (shaped
    like claimed rows), to be sent without a claim query."""
    async with pool.acquire() as conn, conn.transaction():
        if not await store.try_order_lock(conn):
            return 0, [], False
        now = time.monotonic()
        apps_with_rows = await outbox.apps(conn)
        budgets = (trickle or fairness.Trickle()).budgets(apps_with_rows, busy, limit, now)
        waits = len(budgets) < len(apps_with_rows)
        events = await outbox.events(conn, await outbox.take(conn, budgets))
        if not events:
            return 0, [], waits
        if trickle is not None:
            taken: dict[int, int] = {}
            for e in events:
                taken[e.app_id] = taken.get(e.app_id, 0) + 1
            for app_id, n in taken.items():
                trickle.spent(app_id, n, busy, now)
        apps = await store.app_settings(conn, sorted({e.app_id for e in events}))
        planned: list[tuple[int, outbox.OutboxEvent, str, str]] = []
        for i, e in enumerate(events):
            app = apps.get(e.app_id)
            for rid, url in policy.receivers((app["settings"] or {}) if app else {}, e.event_type):
                planned.append((i, e, rid, url))
        keys = sorted({(e.app_id, rid, e.campaign_id) for _, e, rid, _ in planned if e.campaign_id})
        pending = await store.pending_state(conn, keys)
        held = policy.holds(
            [((e.app_id, rid, e.campaign_id) if e.campaign_id else None, policy.is_barrier(e.event_type))
             for _, e, rid, _ in planned],
            {k: v for k, v in pending.items()},
        )
        claimed = [lease is not None and take is not None and not h
                   and take(e.app_id, rid, (apps[e.app_id]["settings"] or {}))
                   for (_, e, rid, _), h in zip(planned, held, strict=True)]
        event_ids = await outbox.event_ids(conn, len(events))
        ids = await store.insert_deliveries(conn, [
            store.NewDelivery(e.app_id, event_ids[i], rid, url, e.event_type, e.campaign_id,
                              policy.is_barrier(e.event_type), e.payload, h)
            for (i, e, rid, url), h in zip(planned, held, strict=True)
        ], lease_s=lease, claimed=claimed)
        await outbox.consume(conn, sorted({e.id for e in events}))
    return len(events), [
        {"id": i, "app_id": e.app_id, "webhook_id": wid, "receiver": rid, "url": url,
         "campaign_id": e.campaign_id, "payload": e.payload, "attempt": 1, "age_s": 0.0}
        for (_, e, rid, url), c, (i, wid) in zip(planned, claimed, ids, strict=True) if c
    ], waits


async def deliver(d: Deliverer, deadline: float, busy: pressure.Busy, router_idle: asyncio.Event,
                  stop: asyncio.Event) -> None:
    """Claim as receivers free up until the deadline, or until nothing is left to do; an app
    whose fan-out writes gets its trickle (Deliverer.tick), the others what they can take."""
    idle_since: float | None = None
    last = 0.0
    while True:
        now = time.monotonic()
        if now >= deadline or stop.is_set():
            return
        started = await d.tick(CLAIM_MAX, await busy())
        if started or d.busy() or not router_idle.is_set():
            idle_since = None
        elif idle_since is None:
            idle_since = now
        elif now - idle_since > IDLE_EXIT_S:
            return
        d.wake.clear()
        try:
            await asyncio.wait_for(d.wake.wait(), 0.05)
        except TimeoutError:
            pass
        wait = TICK_S - (time.monotonic() - last)
        if wait > 0:
            await asyncio.sleep(wait)
        last = time.monotonic()


async def pump(ctx: dict[str, Any]) -> int:
    """Drain outbox and due deliveries while there is work (bounded), if a pump slot is free.
    Run by a cron tick every second, so a stopped or killed pump is replaced within seconds."""
    redis: Redis = ctx["redis"]
    settings = ctx["settings"]
    token = uuid.uuid4().hex
    slot_key = None
    for slot in range(SLOTS):
        key = f"bc:whpump:{settings.queue_name}:{slot}"
        if await redis.set(key, token, nx=True, px=SLOT_TTL_MS):
            slot_key = key
            break
    if slot_key is None:
        return 0
    # One pace per slot for the pump's router and its deliverer, a share of the app's, kept
    # by the process (a pump replaced mid-campaign must not start with a fresh burst): two
    # paces, one per pump, each new, gave a busy app ~4x its trickle beside its fan-out.
    trickle = TRICKLES.setdefault(slot_key, fairness.Trickle(fairness.TRICKLE_RATE / SLOTS,
                                                             fairness.TRICKLE_EVENTS // SLOTS))
    sender = Sender(settings.webhook_timeout_s, settings.webhook_allow_private)
    d = Deliverer(ctx["pool"], redis, sender, settings.webhook_timeout_s, settings.webhook_retry_hours)
    deadline = time.monotonic() + PUMP_SECONDS
    router_idle = asyncio.Event()
    stop = asyncio.Event()
    busy = pressure.Busy(redis, settings.queue_name)

    d.trickle = trickle

    async def router() -> None:
        try:
            while not stop.is_set() and time.monotonic() < deadline:
                marked = await busy()
                try:
                    n, rows, waits = await route_leased(ctx["pool"], ROUTE_BATCH, d.lease, d.take, marked, trickle)
                finally:
                    d.reserved.clear()
                await d.add(rows)  # queued even after the loop below ended: drain gives them back
                if n:
                    router_idle.clear()
                    d.wake.set()
                    continue
                if waits:  # only busy apps' rows are left, waiting for their trickle
                    router_idle.clear()
                else:
                    router_idle.set()
                await asyncio.sleep(min(0.25, max(0.05, trickle.wait(marked, time.monotonic()))))
        finally:
            stop.set()  # a failed router ends the pump; the next cron tick starts another

    async def keep_slot() -> None:
        while True:
            await asyncio.sleep(SLOT_TTL_MS / 3000)
            try:
                await redis.set(slot_key, token, xx=True, px=SLOT_TTL_MS)
            except (RedisError, OSError) as e:  # delivery goes on: PostgreSQL is the record
                logger.warning("webhook pump slot not refreshed: %s", e)

    keeper = asyncio.create_task(keep_slot())
    rec_stop = asyncio.Event()
    try:
        metrics.OUTBOX_DEPTH.set(await outbox.depth(ctx["pool"]))
        recorder = asyncio.create_task(d.recorder(rec_stop))
        route_task = asyncio.create_task(router())
        try:
            await deliver(d, deadline, busy, router_idle, stop)
        finally:
            stop.set()
            await asyncio.gather(route_task, return_exceptions=True)
            await d.drain()
            rec_stop.set()
            await recorder
        if route_task.done() and route_task.exception():
            raise route_task.exception()  # type: ignore[misc]
    finally:
        keeper.cancel()
        await sender.close()
        try:
            if await redis.get(slot_key) in (token, token.encode()):
                await redis.delete(slot_key)
        except (RedisError, OSError):
            pass  # it expires on its own
    return d.sent

"""The webhook dispatcher: outbox -> delivery rows -> signed POSTs, many in flight at once.

One pump (an arq cron tick that found a free slot) runs a router, which turns outbox events
into delivery rows, and a few lanes; each lane claims a batch of due deliveries (FOR UPDATE
SKIP LOCKED), POSTs them concurrently on the worker's one aiohttp session, paced per receiver
by a Redis token bucket shared by all workers, and records the results set-based.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections import defaultdict
from typing import Any

import aiohttp
import asyncpg
from redis.asyncio import Redis
from redis.exceptions import RedisError

from broadcaster import metrics, sendrate
from broadcaster.store import webhooks as store
from broadcaster.webhooks import policy, sign

logger = logging.getLogger("broadcaster.webhooks")

ROUTE_BATCH = 5000
CLAIM_BATCH = 200  # a few hundred in flight: more only queues on the connector, costing CPU
LANES = 3
SLOTS = 2  # pumps allowed at once across all workers
PACE_BUDGET_S = 3.0  # at most this many seconds of a receiver's rate per claimed batch
PUMP_SECONDS = 50.0
SLOT_TTL_MS = 15_000


def lease_s(timeout_s: float) -> float:
    return timeout_s + PACE_BUDGET_S + 5.0


async def route(pool: asyncpg.Pool, limit: int = ROUTE_BATCH) -> int:
    """Turn outbox events into delivery rows (one per matching receiver); events nobody
    receives are consumed too. Returns the number of events consumed."""
    async with pool.acquire() as conn, conn.transaction():
        if not await store.try_order_lock(conn):
            return 0
        events = await store.outbox_batch(conn, limit)
        if not events:
            return 0
        apps = await store.app_settings(conn, sorted({e.app_id for e in events}))
        planned: list[tuple[store.OutboxEvent, str, str]] = []
        for e in events:
            app = apps.get(e.app_id)
            for rid, url in policy.receivers((app["settings"] or {}) if app else {}, e.event_type):
                planned.append((e, rid, url))
        keys = sorted({(e.app_id, rid, e.campaign_id) for e, rid, _ in planned if e.campaign_id})
        pending = await store.pending_state(conn, keys)
        held = policy.holds(
            [((e.app_id, rid, e.campaign_id) if e.campaign_id else None, policy.is_barrier(e.event_type))
             for e, rid, _ in planned],
            {k: v for k, v in pending.items()},
        )
        await store.insert_deliveries(conn, [
            store.NewDelivery(e.app_id, e.id, rid, url, e.event_type, e.campaign_id,
                              policy.is_barrier(e.event_type), e.payload, h)
            for (e, rid, url), h in zip(planned, held, strict=True)
        ])
        await store.consume_outbox(conn, [e.id for e in events])
        return len(events)


class Dispatcher:
    def __init__(self, pool: asyncpg.Pool, redis: Redis, http: aiohttp.ClientSession, timeout_s: float,
                 retry_hours: float) -> None:
        self.pool = pool
        self.redis = redis
        self.http = http
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.lease = lease_s(timeout_s)
        self.window_s = retry_hours * 3600
        self._redis_warned = 0.0

    async def run_once(self, limit: int | None = None) -> int:
        """Claim and deliver one batch; returns how many deliveries were attempted."""
        rows = await store.claim(self.pool, limit or CLAIM_BATCH, self.lease)
        if not rows:
            return 0
        # rows not sent by then go back: their lease must not run out while they wait
        send_by = time.monotonic() + self.lease - (self.timeout.total or 0) - 1
        apps = await store.app_settings(self.pool, sorted({r["app_id"] for r in rows}))
        groups: dict[tuple[int, str], list[Any]] = defaultdict(list)
        for r in rows:
            groups[(r["app_id"], r["receiver"])].append(r)
        giveback: list[int] = []
        sends: list[Any] = []
        for (app_id, receiver), group in groups.items():
            app = apps.get(app_id)
            rate = policy.rate_of(app["settings"] or {}) if app else 0.0
            if rate > 0:
                keep = max(1, int(rate * PACE_BUDGET_S))
                giveback.extend(r["id"] for r in group[keep:])
                group = group[:keep]
            sends.append(self._send_group(app, app_id, receiver, rate, group, send_by, giveback))
        results = [x for part in await asyncio.gather(*sends) for x in part]
        if giveback:
            await store.unclaim(self.pool, giveback)
        await self._record(results)
        return len(results)

    async def _reserve(self, key: str, rate: float, n: int) -> float:
        try:
            return await sendrate.reserve_key(self.redis, key, rate, n)
        except (RedisError, OSError, TimeoutError) as e:  # Redis down: deliver, unpaced
            now = time.monotonic()
            if now - self._redis_warned > 10:
                self._redis_warned = now
                logger.warning("webhook rate limiter unavailable, sending unpaced: %s", e)
            return 0.0

    async def _send_group(
        self, app: Any, app_id: int, receiver: str, rate: float, rows: list[Any], send_by: float,
        giveback: list[int],
    ) -> list[tuple[Any, int | None, str | None, str | None]]:
        if app is None:  # app deleted: nothing to sign with, nobody to tell
            return [(r, 400, None, "app no longer exists") for r in rows]
        tasks: list[asyncio.Task[tuple[Any, int | None, str | None, str | None]]] = []
        chunk = max(1, int(rate / 10)) if rate > 0 else len(rows)
        for i in range(0, len(rows), chunk):
            part = rows[i:i + chunk]
            if rate > 0:
                wait = await self._reserve(f"bc:whrate:{app_id}:{receiver}", rate, len(part))
                if time.monotonic() + wait > send_by:  # other workers took the receiver's pace
                    giveback.extend(r["id"] for r in rows[i:])
                    break
                if wait > 0:
                    await asyncio.sleep(wait)
            # a receiver's URL may have changed since the event was routed: use today's
            url = policy.receiver_url(app["settings"] or {}, receiver)
            tasks.extend(asyncio.create_task(self._post(r, url or r["url"], app["api_key"], app["api_secret"]))
                         for r in part)
        return list(await asyncio.gather(*tasks))

    async def _post(self, row: Any, url: str, api_key: str, secret: str) -> tuple[Any, int | None, str | None, str | None]:
        body = row["payload"].encode()
        headers = {
            "Content-Type": "application/json",
            "X-Signature": sign(body, secret),
            "X-Webhook-Id": str(row["webhook_id"]),
            "X-Webhook-Attempt": str(row["attempt"]),
            "X-Api-Key": api_key,
            "User-Agent": "broadcaster-webhooks",
        }
        started = time.perf_counter()
        try:
            async with self.http.post(url, data=body, headers=headers, timeout=self.timeout,
                                      allow_redirects=False) as resp:
                text = await resp.read()
                status = resp.status
                retry_after = resp.headers.get("Retry-After")
            error = None if 200 <= status < 300 else f"HTTP {status}: {text[:200].decode('utf-8', 'replace')}"
            return row, status, retry_after, error
        except TimeoutError:
            return row, None, None, f"timeout after {self.timeout.total}s"
        except (aiohttp.ClientError, OSError) as e:
            return row, None, None, f"{type(e).__name__}: {e}"[:300]
        finally:
            metrics.WEBHOOK_LATENCY.observe(time.perf_counter() - started)

    async def _record(self, results: list[tuple[Any, int | None, str | None, str | None]]) -> None:
        delivered: list[int] = []
        retries: list[tuple[int, float, int | None, str | None]] = []
        failures: list[tuple[int, int | None, str | None]] = []
        released: set[store.Key] = set()
        for row, status, retry_after, error in results:
            d = policy.decide(status, row["attempt"], retry_after=retry_after, series_age_s=row["age_s"],
                              window_s=self.window_s, jitter=random.random())
            metrics.WEBHOOK_DELIVERIES.labels(d.outcome).inc()
            if d.outcome == "delivered":
                delivered.append(row["id"])
            elif d.outcome == "retry":
                retries.append((row["id"], d.delay, status, error))
            else:
                failures.append((row["id"], status, error))
                logger.warning("webhook %s to %s failed for good: %s", row["webhook_id"], row["url"], error)
            if d.outcome != "retry" and row["campaign_id"]:
                released.add((row["app_id"], row["receiver"], row["campaign_id"]))
        async with self.pool.acquire() as conn, conn.transaction():
            await store.finish(conn, delivered=delivered, retries=retries, failures=failures,
                               released=sorted(released))


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
    d = Dispatcher(ctx["pool"], redis, ctx["http"], settings.webhook_timeout_s, settings.webhook_retry_hours)
    deadline = time.monotonic() + PUMP_SECONDS
    done = 0

    # One router keeps the outbox flowing into delivery rows while the lanes send, so a lane
    # never stalls on routing; everyone stops when there is nothing left to route or send.
    router_idle = asyncio.Event()
    lanes_left = LANES

    async def router() -> None:
        while time.monotonic() < deadline:
            if await route(ctx["pool"]):
                router_idle.clear()
                continue
            router_idle.set()
            if lanes_left == 0:
                return
            await asyncio.sleep(0.05)

    async def lane() -> None:
        nonlocal done, lanes_left
        try:
            while time.monotonic() < deadline:
                sent = await d.run_once()
                done += sent
                if not sent:
                    if router_idle.is_set():
                        return
                    await asyncio.sleep(0.02)
        finally:
            lanes_left -= 1

    async def keep_slot() -> None:
        while True:
            await asyncio.sleep(SLOT_TTL_MS / 3000)
            try:
                await redis.set(slot_key, token, xx=True, px=SLOT_TTL_MS)
            except (RedisError, OSError) as e:  # the lanes go on: PostgreSQL is the record
                logger.warning("webhook pump slot not refreshed: %s", e)

    keeper = asyncio.create_task(keep_slot())
    try:
        metrics.OUTBOX_DEPTH.set(await store.depth(ctx["pool"]))
        async with asyncio.TaskGroup() as tg:  # one failing stops the others
            tg.create_task(router())
            for _ in range(LANES):
                tg.create_task(lane())
    finally:
        keeper.cancel()
        try:
            if await redis.get(slot_key) in (token, token.encode()):
                await redis.delete(slot_key)
        except (RedisError, OSError):
            pass  # it expires on its own
    return done

"""The webhook dispatcher: outbox -> delivery rows -> signed POSTs, many in flight at once.

One pump (an arq cron tick that found a free slot) runs a router, which turns outbox events
into delivery rows, and a few lanes; each lane claims a batch of due deliveries (FOR UPDATE
SKIP LOCKED), POSTs them concurrently on the worker's one aiohttp session, paced per receiver
by a Redis token bucket shared by all workers, and records the results set-based.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import random
import socket
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg
from redis.asyncio import Redis
from redis.exceptions import RedisError

from broadcaster import metrics, pressure, sendrate
from broadcaster.store import webhooks as store
from broadcaster.webhooks import egress, http1, policy, resolve

logger = logging.getLogger("broadcaster.webhooks")

ROUTE_BATCH = 5000
CLAIM_BATCH = 500
SENDERS = 64  # requests in flight per lane and receiver
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
    return (await route_leased(pool, limit, None))[0]


async def route_leased(
    pool: asyncpg.Pool, limit: int, lease: float | None,
) -> tuple[int, list[dict[str, Any]]]:
    """route(); with a lease, the new rows that need not wait come back already claimed for
    their first attempt (shaped like claim()'s rows), to be sent without a claim query."""
    async with pool.acquire() as conn, conn.transaction():
        if not await store.try_order_lock(conn):
            return 0, []
        events = await store.outbox_batch(conn, limit)
        if not events:
            return 0, []
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
        ids = await store.insert_deliveries(conn, [
            store.NewDelivery(e.app_id, e.id, rid, url, e.event_type, e.campaign_id,
                              policy.is_barrier(e.event_type), e.payload, h)
            for (e, rid, url), h in zip(planned, held, strict=True)
        ], lease_s=lease)
        await store.consume_outbox(conn, [e.id for e in events])
    if lease is None:
        return len(events), []
    return len(events), [
        {"id": i, "app_id": e.app_id, "webhook_id": wid, "receiver": rid, "url": url,
         "campaign_id": e.campaign_id, "payload": e.payload, "attempt": 1, "age_s": 0.0}
        for (e, rid, url), h, (i, wid) in zip(planned, held, ids, strict=True) if not h
    ]


class Dispatcher:
    def __init__(self, pool: asyncpg.Pool, redis: Redis, http: aiohttp.ClientSession, timeout_s: float,
                 retry_hours: float, allow_private: bool = False) -> None:
        self.pool = pool
        self.redis = redis
        self.http = http
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.lease = lease_s(timeout_s)
        self.window_s = retry_hours * 3600
        self._redis_warned = 0.0
        self._macs: dict[str, Any] = {}
        self.allow_private = allow_private
        # plain-http receivers; https and the unusual go through aiohttp
        self.fast = http1.Client(resolve.Resolver(allow_private))

    async def run_once(self, limit: int | None = None) -> int:
        """Claim and deliver one batch; returns how many deliveries were attempted."""
        rows = await store.claim(self.pool, limit or CLAIM_BATCH, self.lease)
        return await self.deliver(rows) if rows else 0

    async def deliver(self, rows: list[Any], claimed_at: float | None = None) -> int:
        """Send claimed rows (paced per receiver), give back those that cannot go in time,
        record the results; returns how many were attempted."""
        # rows not sent by then go back: their lease must not run out while they wait
        send_by = (claimed_at or time.monotonic()) + self.lease - (self.timeout.total or 0) - 1
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
    ) -> list[Result]:
        if app is None:  # app deleted: nothing to sign with, nobody to tell
            return [Result(r, None, None, "app no longer exists", final=True) for r in rows]
        # a receiver's URL may have changed since the event was routed: use today's; one
        # removed or switched off since gets nothing more (PATCH /app ends its rows too)
        url = policy.receiver_url(app["settings"] or {}, receiver)
        if url is None:
            return [Result(r, None, None, "receiver removed", final=True) for r in rows]
        tasks: list[asyncio.Future[list[Result]]] = []
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
            tasks.append(asyncio.ensure_future(self._post_all(part, url, app["api_key"], app["api_secret"])))
        return [x for part in await asyncio.gather(*tasks) for x in part]

    async def _post_all(self, rows: list[Any], url: str, api_key: str, secret: str,
                        ) -> list[Result]:
        """POST rows with at most SENDERS in flight: a few long-lived coroutines, not a task
        per request queueing on the connector."""
        out: list[Result] = []
        it = iter(rows)

        async def sender() -> None:
            for r in it:
                out.append(await self._post(r, url, api_key, secret))

        await asyncio.gather(*(sender() for _ in range(min(SENDERS, len(rows)))))
        return out

    def _sign(self, body: bytes, secret: str) -> str:
        mac = self._macs.get(secret)
        if mac is None:  # the keyed state once per secret, copied per body
            mac = self._macs[secret] = hmac.new(secret.encode(), digestmod=hashlib.sha256)
        m = mac.copy()
        m.update(body)
        return m.hexdigest()

    async def _post(self, row: Any, url: str, api_key: str, secret: str) -> Result:
        body = row["payload"].encode()
        signature = self._sign(body, secret)
        fast = http1.target(url) if _header_safe(api_key) else None
        started = time.perf_counter()
        try:
            if fast is not None:
                r = await self.fast.post(fast, b"Content-Type: application/json\r\n"
                                         b"User-Agent: broadcaster-webhooks\r\n"
                                         b"X-Signature: %s\r\nX-Webhook-Id: %s\r\n"
                                         b"X-Webhook-Attempt: %d\r\nX-Api-Key: %s\r\n" % (
                                             signature.encode(), str(row["webhook_id"]).encode(),
                                             row["attempt"], api_key.encode()),
                                         body, self.timeout.total or 0)
                status = r.status
                ra = r.headers.get(b"retry-after")
                retry_after = ra.decode("latin-1") if ra is not None else None
            else:
                host = egress.url_host(url)
                if not self.allow_private and host is not None:
                    egress.check_host(host)  # aiohttp skips its resolver for literal addresses
                headers = {
                    "Content-Type": "application/json",
                    "X-Signature": signature,
                    "X-Webhook-Id": str(row["webhook_id"]),
                    "X-Webhook-Attempt": str(row["attempt"]),
                    "X-Api-Key": api_key,
                    "User-Agent": "broadcaster-webhooks",
                }
                async with self.http.post(url, data=body, headers=headers, timeout=self.timeout,
                                          allow_redirects=False) as resp:
                    await resp.read()  # read to keep the connection; never recorded
                    status = resp.status
                    retry_after = resp.headers.get("Retry-After")
            # the status and a category only: a receiver's answer is never stored or shown
            error = None if 200 <= status < 300 else f"http_{status}"
            return Result(row, status, retry_after, error)
        except egress.EgressRefused as e:
            return Result(row, None, None, f"egress_refused: {e}", final=True)
        except TimeoutError:
            return Result(row, None, None, f"timeout after {self.timeout.total}s")
        except (aiohttp.ClientError, OSError) as e:
            return Result(row, None, None, error_category(e))
        finally:
            metrics.WEBHOOK_LATENCY.observe(time.perf_counter() - started)

    async def _record(self, results: list[Result]) -> None:
        delivered: list[int] = []
        retries: list[tuple[int, float, int | None, str | None]] = []
        failures: list[tuple[int, int | None, str | None]] = []
        released: set[store.Key] = set()
        for res in results:
            row, status, error = res.row, res.status, res.error
            d = (policy.Decision("failed") if res.final else
                 policy.decide(status, row["attempt"], retry_after=res.retry_after,
                               series_age_s=row["age_s"], window_s=self.window_s, jitter=random.random()))
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
    # its own connector: enough connections for every sender, kept alive between batches
    allow = settings.webhook_allow_private
    http = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=30,
                                       resolver=resolve.GuardedResolver(allow)),
        skip_auto_headers=("Accept", "Accept-Encoding"), auto_decompress=False,
    )
    d = Dispatcher(ctx["pool"], redis, http, settings.webhook_timeout_s, settings.webhook_retry_hours,
                   allow)
    deadline = time.monotonic() + PUMP_SECONDS
    done = 0

    # One router keeps the outbox flowing into delivery rows while the lanes send, so a lane
    # never stalls on routing; the rows it creates that need not wait are inserted claimed
    # and handed to the lanes directly. Everyone stops when nothing is left to route or send.
    router_idle = asyncio.Event()
    routed: asyncio.Queue[tuple[float, list[Any]]] = asyncio.Queue(maxsize=LANES)
    lanes_left = LANES
    routing = False  # a route call or its hand-over is under way: lanes must stay to take it
    orphans: list[Any] = []  # routed and claimed after the lanes ended: unclaimed at the end

    busy = pressure.Busy(redis, settings.queue_name)

    async def router() -> None:
        nonlocal routing
        while time.monotonic() < deadline and lanes_left:
            routing = True
            trickle = await busy()
            try:
                n, rows = await route_leased(
                    ctx["pool"], pressure.TRICKLE_EVENTS if trickle else ROUTE_BATCH, d.lease)
                if n:
                    router_idle.clear()
                claimed = time.monotonic()
                for i in range(0, len(rows), CLAIM_BATCH):
                    # The lanes may all have ended while this call ran (they saw nothing left
                    # to do): a blocking put would then wait forever. Those rows go back.
                    while lanes_left and routed.full():
                        await asyncio.sleep(0.01)
                    if lanes_left:
                        routed.put_nowait((claimed, rows[i:i + CLAIM_BATCH]))
                    else:
                        orphans.extend(rows[i:i + CLAIM_BATCH])
            finally:
                routing = False
            if n and trickle:
                await asyncio.sleep(pressure.TRICKLE_PAUSE_S)
            if n:
                continue
            router_idle.set()
            if lanes_left == 0:
                return
            await asyncio.sleep(0.05)

    async def lane(first: bool) -> None:
        nonlocal done, lanes_left
        try:
            while time.monotonic() < deadline or routing or not routed.empty():
                trickle = await busy()
                if trickle and not first:  # one lane keeps the trickle going
                    await asyncio.sleep(pressure.TRICKLE_PAUSE_S)
                    continue
                if not routed.empty():
                    claimed, rows = routed.get_nowait()
                    sent = await d.deliver(rows, claimed)
                else:
                    sent = await d.run_once()
                done += sent
                if sent and trickle:
                    await asyncio.sleep(pressure.TRICKLE_PAUSE_S)
                if not sent:
                    if router_idle.is_set() and not routing and routed.empty():
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
            for i in range(LANES):
                tg.create_task(lane(i == 0))
    finally:
        keeper.cancel()
        left = [r["id"] for _, rows in _drain(routed) for r in rows] + [r["id"] for r in orphans]
        if left:  # handed over but never sent (a lane failed): back to the pool now, not at lease end
            try:
                await store.unclaim(ctx["pool"], left)
            except (asyncpg.PostgresError, OSError):
                pass  # their lease runs out on its own
        d.fast.close()
        await http.close()
        try:
            if await redis.get(slot_key) in (token, token.encode()):
                await redis.delete(slot_key)
        except (RedisError, OSError):
            pass  # it expires on its own
    return done


def _drain(q: asyncio.Queue[tuple[float, list[Any]]]) -> list[tuple[float, list[Any]]]:
    out = []
    while not q.empty():
        out.append(q.get_nowait())
    return out


@dataclass(frozen=True)
class Result:
    row: Any
    status: int | None  # None: no HTTP answer (network error, timeout, refused by the guard)
    retry_after: str | None
    error: str | None  # a category (http_404, timeout, refused, ...), never the answer's bytes
    final: bool = False  # no retry whatever the status


def error_category(e: BaseException) -> str:
    """What went wrong, in words that carry nothing the receiver sent."""
    if isinstance(e, ConnectionRefusedError):
        return "refused"
    if isinstance(e, ConnectionResetError | BrokenPipeError):
        return "reset"
    if isinstance(e, socket.gaierror):
        return "dns"
    if isinstance(e, http1.ProtocolError | aiohttp.ClientResponseError | aiohttp.ServerDisconnectedError):
        return "protocol"
    if isinstance(e, aiohttp.ClientConnectorError) and isinstance(e.os_error, ConnectionRefusedError):
        return "refused"
    if isinstance(e, aiohttp.ClientConnectorError | aiohttp.ClientOSError) and isinstance(
            e.__cause__ or e.__context__, socket.gaierror):
        return "dns"
    return "connection"


def _header_safe(value: str) -> bool:
    return value.isascii() and value.isprintable()

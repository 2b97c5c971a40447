"""Feeding each receiver what its window allows (webhooks/adapt.py), recording what came of it.

Per receiver, claimed rows wait in a short local queue (at most about QUEUE_S of what the
receiver takes, as measured by its window and latency) and start the moment a window slot
frees, so a request's timeout runs from when it is written. A row that waited longer than
its lease allows is given back unsent instead (its lease must not run out while it is in
flight, or another pump could send the same attempt again). Claims are one query for all
receivers that need rows, each getting what it can use: one app's backlog or slow receiver
takes nothing from another's. Each row goes to the URL recorded on it (store/deliveries.py);
results are recorded set-based every FLUSH_S (webhooks/record.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict, deque
from typing import Any

import asyncpg
from redis.asyncio import Redis
from redis.exceptions import RedisError

from broadcaster import sendrate
from broadcaster.store import deliveries, webhook_secrets
from broadcaster.store import webhooks as store
from broadcaster.webhooks import adapt, fairness, policy
from broadcaster.webhooks.record import record
from broadcaster.webhooks.sender import Result, Sender

logger = logging.getLogger("broadcaster.webhooks")

CLAIM_MAX = 2000  # rows claimed per query, all receivers together
QUEUE_S = 2.0  # rows claimed ahead per receiver: about this many seconds of its pace
QUEUE_MAX = 5000
PACE_MAX_S = 2.0  # a paced receiver's rows are claimed at most this far ahead of their turn
DUE_REFRESH_S = 0.25  # how often the receivers with due rows are looked up again
APPS_REFRESH_S = 1.0  # keys and rate limits; URLs come with the rows (store/deliveries.py)
FLUSH_S = 0.1

Key = tuple[int, str]  # (app_id, receiver)
WINDOWS: dict[Key, adapt.Window] = {}  # per worker process: outlives a pump


def lease_s(timeout_s: float) -> float:
    return timeout_s + QUEUE_S + PACE_MAX_S + 10.0


class Deliverer:
    def __init__(self, pool: asyncpg.Pool, redis: Redis, sender: Sender, timeout_s: float,
                 retry_hours: float) -> None:
        self.pool, self.redis, self.sender = pool, redis, sender
        self.timeout_s = timeout_s
        self.lease = lease_s(timeout_s)
        self.send_by_s = self.lease - timeout_s - 2.0  # queued longer than this: give back
        self.window_s = retry_hours * 3600
        self.results: list[Result] = []
        self.queues: dict[Key, deque[tuple[float, float, Any]]] = defaultdict(deque)  # ready, claimed, row
        self.sending = 0
        self.wake = asyncio.Event()
        self.idle = asyncio.Event()
        self.due: list[Key] = []
        self._due_at = 0.0
        self._turn = 0
        self._apps: dict[int, Any] = {}
        self._whsecs: dict[Key, list[str]] = {}
        self._apps_at = 0.0
        self._redis_warned = 0.0
        self._giveback: list[int] = []
        self.reserved: dict[Key, int] = defaultdict(int)
        self.tasks: set[asyncio.Task[None]] = set()
        self.trickle = fairness.Trickle()
        self.sent = 0

    def window(self, key: Key) -> adapt.Window:
        return adapt.window_for(WINDOWS, key, self.timeout_s)

    def room(self, key: Key, rate: float) -> int:
        """How many more rows this receiver's queue takes."""
        w = self.window(key)
        if w.down:
            return 1 if not self.queues[key] and w.free(time.monotonic()) else 0
        per_s = w.size / max(w.base_s or 0.05, 0.001)
        if rate > 0:
            per_s = min(per_s, rate)
        cap = min(QUEUE_MAX, max(int(w.size), int(per_s * QUEUE_S)))
        if rate > 0:
            cap = min(cap, max(1, int(rate * PACE_MAX_S)))
        return max(0, cap - len(self.queues[key]) - w.inflight)

    def take(self, app_id: int, receiver: str, settings: dict[str, Any]) -> bool:
        """Room for a row the router inserts already claimed (counted in `reserved` until the
        router hands the rows over with add() and clears it)."""
        key = (app_id, receiver)
        if self.room(key, policy.rate_of(settings)) - self.reserved[key] <= 0:
            return False
        self.reserved[key] += 1
        return True

    async def tick(self, cap: int, busy: frozenset[int] = frozenset()) -> int:
        """Claim for every receiver with due rows what it has room for (cap in all); the
        receivers of apps whose fan-out writes (`busy`) share their app's trickle."""
        now = time.monotonic()
        if now >= self._due_at:
            self.due = await deliveries.due_receivers(self.pool)
            self._due_at = now + DUE_REFRESH_S
        for key in [k for k, q in self.queues.items() if q]:
            self.feed(key)  # slots freed by another pump of this process, or a pace now due
        if not self.due:
            return 0
        self._turn = (self._turn + 1) % len(self.due)
        order = self.due[self._turn:] + self.due[:self._turn]  # round robin: who goes first
        share = max(1, cap // len(order))
        paced = self.trickle.budgets({k[0] for k in order} & busy, busy, 0, now)
        wants: list[tuple[int, str, int]] = []
        for key in order:
            app = await self._app(key[0])
            rate = policy.rate_of(app["settings"] or {}) if app is not None else 0.0
            n = min(self.room(key, rate) - self.reserved.get(key, 0), share, cap)
            if key[0] in busy:
                n = min(n, paced.get(key[0], 0))
                paced[key[0]] = paced.get(key[0], 0) - max(0, n)
            w = self.window(key)
            if n > 0 and (len(self.queues[key]) + w.inflight <= w.size / 2 or w.inflight == 0):
                wants.append((key[0], key[1], n))
                cap -= n
            if cap <= 0:
                break
        if not wants:
            return 0
        rows = await deliveries.claim_for(self.pool, wants, self.lease)
        got: dict[Key, int] = defaultdict(int)
        per_app: dict[int, int] = defaultdict(int)
        for row in rows:
            got[(row["app_id"], row["receiver"])] += 1
            per_app[row["app_id"]] += 1
        for app_id, k in per_app.items():
            self.trickle.spent(app_id, k, busy, now)
        empty = {(a, r) for a, r, n in wants if got.get((a, r), 0) < n}
        if empty:  # nothing more due there until the next look
            self.due = [k for k in self.due if k not in empty]
        await self.add(rows)
        return len(rows)

    async def _app(self, app_id: int) -> Any:
        """The app's row (settings, keys), refreshed every APPS_REFRESH_S; the senders read
        the last one known (None only once the app is gone). Never replaced whole: a refresh
        dropped an app that a concurrent call had just added (KeyError, the pump ended)."""
        now = time.monotonic()
        if now >= self._apps_at:
            self._apps_at = now + APPS_REFRESH_S
            known = sorted(set(self._apps) | {app_id})
            fresh = await store.app_settings(self.pool, known)
            secrets = await webhook_secrets.signing(self.pool, known)
            self._apps.update({i: fresh.get(i) for i in known})
            for k in [k for k in self._whsecs if k[0] in fresh]:
                del self._whsecs[k]
            self._whsecs.update(secrets)
        elif app_id not in self._apps:
            self._apps.update(await store.app_settings(self.pool, [app_id]))
            self._apps.setdefault(app_id, None)
            self._whsecs.update(await webhook_secrets.signing(self.pool, [app_id]))
        return self._apps[app_id]

    async def _signing(self, key: Key) -> None:
        """A receiver configured before signing secrets existed gets one now (the tenant sees
        it by rotating: POST /webhooks/secrets/rotate)."""
        if key not in self._whsecs:
            await webhook_secrets.create_missing(self.pool, key[0], [key[1]])
            self._whsecs.update(await webhook_secrets.signing(self.pool, [key[0]]))

    async def add(self, rows: list[Any]) -> None:
        """Queue claimed rows, paced per receiver, and start what the windows allow."""
        groups: dict[Key, list[Any]] = defaultdict(list)
        for r in rows:
            groups[(r["app_id"], r["receiver"])].append(r)
        for key, group in groups.items():
            app = await self._app(key[0])
            if app is None:  # deleted since routing (a removed receiver's rows PATCH ended)
                self.results.extend(Result(r, None, None, "app no longer exists", final=True) for r in group)
                continue
            await self._signing(key)
            rate = policy.rate_of(app["settings"] or {})
            q = self.queues[key]
            chunk = max(1, int(rate / 10)) if rate > 0 else len(group)
            claimed = time.monotonic()
            for i in range(0, len(group), chunk):  # a tenth of a second of pace at a time
                part = group[i:i + chunk]
                ready = time.monotonic()
                if rate > 0:
                    ready += await self._reserve(f"bc:whrate:{key[0]}:{key[1]}", rate, len(part))
                q.extend((ready, claimed, r) for r in part)
            self.feed(key)

    def _next(self, key: Key, q: deque[tuple[float, float, Any]], w: adapt.Window,
              now: float) -> Any | None:
        """The next queued row that may go now (taking its window slot), None if none."""
        app = self._apps.get(key[0])
        while q and w.free(now) > 0:
            ready, claimed, row = q[0]
            if ready > now:  # paced: come back when its turn is due
                asyncio.get_running_loop().call_later(ready - now, self.feed, key)
                return None
            q.popleft()
            gone = app is not None and policy.receiver_url(app["settings"] or {}, key[1]) is None
            if app is None or gone or now - claimed > self.send_by_s:
                self._giveback.append(row["id"])  # gone: ended by PATCH, or newer than the cache
                self._apps_at = 0.0 if gone else self._apps_at
                continue
            w.started()
            return row
        return None

    def feed(self, key: Key) -> None:
        """Start senders for a receiver while its window has room and rows are queued: each
        sender goes on with the next row as its request returns (no task per request)."""
        q = self.queues.get(key)
        if not q:
            return
        w = self.window(key)
        now = time.monotonic()
        while q:
            row = self._next(key, q, w, now)
            if row is None:
                return
            self.sending += 1
            t = asyncio.create_task(self._sender(key, q, w, row))
            self.tasks.add(t)
            t.add_done_callback(self.tasks.discard)

    async def _sender(self, key: Key, q: deque[tuple[float, float, Any]], w: adapt.Window,
                      row: Any | None) -> None:
        try:
            while row is not None:
                app = self._apps.get(key[0])
                if app is None:  # deleted since: nothing more goes there
                    w.returned()
                    self.results.append(Result(row, None, None, "app no longer exists", final=True))
                else:  # to the URL on the row, never the cached settings' (a second stale)
                    res = await self.sender.post(row, row["url"], app["api_key"], app["api_secret"],
                                                 self._whsecs.get(key, []))
                    now = time.monotonic()
                    if res.final and res.status is None:
                        w.returned()
                    else:
                        ok = res.status is not None and not policy.retryable(res.status)
                        w.answered(ok, res.latency_s, res.sent_at, now, reached=res.status is not None)
                    self.results.append(res)
                    self.sent += 1
                row = self._next(key, q, w, time.monotonic())
        finally:
            self.sending -= 1
            self.wake.set()

    async def _reserve(self, key: str, rate: float, n: int) -> float:
        try:
            return await sendrate.reserve_key(self.redis, key, rate, n)
        except (RedisError, OSError, TimeoutError) as e:  # Redis down: deliver, unpaced
            now = time.monotonic()
            if now - self._redis_warned > 10:
                self._redis_warned = now
                logger.warning("webhook rate limiter unavailable, sending unpaced: %s", e)
            return 0.0

    def busy(self) -> bool:
        return bool(self.sending or self.results or self._giveback or any(self.queues.values()))

    async def flush(self) -> None:
        results, self.results = self.results, []
        giveback, self._giveback = self._giveback, []
        if giveback:
            try:
                await deliveries.unclaim(self.pool, giveback)
            except (asyncpg.PostgresError, OSError) as e:
                logger.warning("webhook rows not given back (their lease frees them): %s", e)
        if results and await record(self.pool, results, self.window_s,
                                    lambda a, r: self.window((a, r)).down):
            self._due_at = 0.0  # rows were freed: look for them now

    async def recorder(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), FLUSH_S)
            except TimeoutError:
                pass
            await self.flush()

    async def drain(self) -> None:
        """Send nothing new; wait for what is in flight, give back what is queued, record."""
        for q in self.queues.values():
            self._giveback.extend(row["id"] for _, _, row in q)
            q.clear()
        while self.sending:
            self.wake.clear()
            try:
                await asyncio.wait_for(self.wake.wait(), 0.1)
            except TimeoutError:
                pass
        await self.flush()

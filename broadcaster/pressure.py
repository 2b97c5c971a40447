"""Fan-out first: while campaign batches are writing, webhook delivery yields.

On a small machine a campaign's batches and the webhook pump compete for the same PostgreSQL:
every recipient makes two webhook events, and routing and delivering them costs about as much
again. Delivered alongside at full speed, they halved the fan-out rate; the events cannot be
delivered faster than they are produced anyway (two per recipient), so they are best drained
once the messages are in. Each batch marks its app busy in Redis for a moment before it
writes; while the mark is there, the pump keeps a trickle of that app's events going (so
webhooks never starve, even under a long rate-limited campaign) and gives the rest to the
fan-out. Other apps' events go at full speed (webhooks/fairness.py).
"""

from __future__ import annotations

import time

from redis.asyncio import Redis
from redis.exceptions import RedisError

MARK_MS = 1500  # a mark without a batch to end it (mark_busy with no batch) lasts this long
WRITING_MS = 60_000  # a batch's mark until its end (if its worker dies: at most this long)
TAIL_MS = 300  # after a batch ends: its next batch marks again within this
_CACHE_S = 0.1


def _key(queue: str) -> str:
    return f"bc:fanout:busy:{queue}"


async def mark_busy(redis: Redis, queue: str, app_id: int, batch: str = "") -> None:
    """Mark the app busy (a sorted set of "app_id:batch" scored by when the mark ends): only
    its own webhooks trickle (webhooks/fairness.py). A batch's mark lasts until mark_done:
    a fixed 1.5 s lapsed under load while batches still wrote (a batch of 2,000 can take
    longer), and the pump went to full speed beside the fan-out."""
    try:
        ms = WRITING_MS if batch else MARK_MS
        await redis.zadd(_key(queue), {f"{app_id}:{batch}": time.time() * 1000 + ms})
    except (RedisError, OSError):
        pass  # only a hint: without it the pump runs at full speed


async def mark_done(redis: Redis, queue: str, app_id: int, batch: str) -> None:
    """The batch ended: its mark lapses shortly (if it marked at all)."""
    try:
        await redis.zadd(_key(queue), {f"{app_id}:{batch}": time.time() * 1000 + TAIL_MS}, xx=True)
    except (RedisError, OSError):
        pass  # it lapses after WRITING_MS


class Busy:
    """The apps some batch marked busy lately (cached briefly: asked per claim)."""

    def __init__(self, redis: Redis, queue: str) -> None:
        self.redis, self.key = redis, _key(queue)
        self._at, self._value = 0.0, frozenset[int]()

    async def __call__(self) -> frozenset[int]:
        now = time.monotonic()
        if now - self._at >= _CACHE_S:
            ms = time.time() * 1000
            try:
                async with self.redis.pipeline(transaction=False) as p:
                    p.zremrangebyscore(self.key, "-inf", ms)
                    p.zrangebyscore(self.key, ms, "+inf")
                    _, members = await p.execute()
                self._value = frozenset(int(m.split(b":", 1)[0] if isinstance(m, bytes) else m.split(":", 1)[0])
                                        for m in members)
            except (RedisError, OSError, ValueError):
                self._value = frozenset()
            self._at = now
        return self._value

"""Fan-out first: while campaign batches are writing, webhook delivery yields.

On a small machine a campaign's batches and the webhook pump compete for the same PostgreSQL:
every recipient writes two outbox events, and routing and delivering them costs about as much
again. Delivered alongside at full speed, they halved the fan-out rate; the events cannot be
delivered faster than they are produced anyway (two per recipient), so they are best drained
once the messages are in. Each batch marks the queue busy in Redis for a moment before it
writes; while the mark is there, the pump keeps a trickle going (so webhooks never starve,
even under a long rate-limited campaign) and gives the rest to the fan-out.
"""

from __future__ import annotations

import time

from redis.asyncio import Redis
from redis.exceptions import RedisError

MARK_MS = 1500  # a batch writing marks the queue busy this long
TRICKLE_EVENTS = 250  # while busy: at most this many events routed ...
TRICKLE_PAUSE_S = 0.25  # ... per this pause (about 1,000 events/s)
_CACHE_S = 0.1


def _key(queue: str) -> str:
    return f"bc:fanout:busy:{queue}"


async def mark_busy(redis: Redis, queue: str) -> None:
    try:
        await redis.set(_key(queue), b"1", px=MARK_MS)
    except (RedisError, OSError):
        pass  # only a hint: without it the pump runs at full speed


class Busy:
    """Whether some batch marked the queue busy lately (cached briefly: asked per claim)."""

    def __init__(self, redis: Redis, queue: str) -> None:
        self.redis, self.key = redis, _key(queue)
        self._at, self._value = 0.0, False

    async def __call__(self) -> bool:
        now = time.monotonic()
        if now - self._at >= _CACHE_S:
            try:
                self._value = bool(await self.redis.exists(self.key))
            except (RedisError, OSError):
                self._value = False
            self._at = now
        return self._value

"""Fan-out first (broadcaster.pressure): a batch's busy mark lasts until the batch ends, however
long it writes, and lapses shortly after; a mark of one app never marks another."""

from __future__ import annotations

import time

from redis.asyncio import Redis

from broadcaster import pressure
from tests.helpers import await_for


async def test_a_batch_mark_lasts_until_its_batch_ends(settings) -> None:
    redis = Redis.from_url(settings.redis_url)
    key = f"bc:fanout:busy:{settings.queue_name}"
    try:
        await pressure.mark_busy(redis, settings.queue_name, 7, "camp:3")
        ends = await redis.zscore(key, "7:camp:3")
        # a batch slower than the old fixed 1.5 s mark is still marked while it writes
        assert ends is not None and ends > time.time() * 1000 + pressure.MARK_MS * 10
        assert await pressure.Busy(redis, settings.queue_name)() == frozenset({7})

        await pressure.mark_busy(redis, settings.queue_name, 8, "other:1")
        await pressure.mark_done(redis, settings.queue_name, 7, "camp:3")
        ends = await redis.zscore(key, "7:camp:3")
        assert ends is not None and ends <= time.time() * 1000 + pressure.TAIL_MS

        async def only_eight() -> bool:
            return await pressure.Busy(redis, settings.queue_name)() == frozenset({8})

        await await_for(only_eight, timeout=10)
        # ending a batch that never marked (deferred before writing) marks nothing
        await pressure.mark_done(redis, settings.queue_name, 9, "never:1")
        assert await redis.zscore(key, "9:never:1") is None
    finally:
        await redis.aclose()

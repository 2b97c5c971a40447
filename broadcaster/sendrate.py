"""Campaign send rate (messages/s per app) shared by every worker: a token bucket in Redis.

One atomic Lua call per batch reserves n tokens and answers how long the caller must wait
before sending them, so all workers together never exceed the rate.
"""

from __future__ import annotations

import time

from redis.asyncio import Redis

# KEYS[1] = bucket key; ARGV = rate/s, n, now (s, float). Returns wait seconds (string).
# Virtual scheduling (GCRA-like): the key holds the time at which the next token is free.
_RESERVE = """
local rate = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local start = tat
tat = tat + n / rate
redis.call('SET', KEYS[1], tostring(tat), 'EX', math.ceil(tat - now) + 60)
return tostring(start - now)
"""


async def reserve(redis: Redis, app_id: int, rate: float, n: int) -> float:
    """Reserve n sends at `rate`/s for this app; returns seconds to wait before sending (0 = now).
    A rate of 0 (or less) means unlimited."""
    return await reserve_key(redis, f"bc:sendrate:{app_id}", rate, n)


async def reserve_key(redis: Redis, key: str, rate: float, n: int) -> float:
    """The same bucket under any key (webhook receivers pace their requests with it)."""
    if rate <= 0 or n <= 0:
        return 0.0
    wait = await redis.eval(  # type: ignore[misc]
        _RESERVE, 1, key, str(rate), str(n), str(time.time())
    )
    return max(0.0, float(wait))

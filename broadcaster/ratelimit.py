"""API rate limits per app and operation: a per-minute budget in Redis shared by every API
process, checked with one atomic script call per request.

The minute's budget refills evenly: a full budget allows `limit` requests at once, then one
more every 60/limit seconds. If Redis is unreachable the request is served anyway (fail
open), logged and counted: losing the limiter must not take the API down with it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from broadcaster import metrics
from broadcaster.appconfig import capped
from broadcaster.errors import ApiError
from broadcaster.keys import REDIS, SETTINGS
from broadcaster.middleware import Handler, current_app, error_response, is_public, operation

logger = logging.getLogger("broadcaster.ratelimit")

READ_LIMIT = 10_000
WRITE_LIMIT = 1_000
HIGH_VOLUME = {"AddSegmentTargets", "DeleteSegmentTargets"}
REDIS_TIMEOUT_S = 0.5
BREAKER_S = 1.0  # after a Redis failure, skip it this long (no per-request connect attempts)

# A leaky bucket counted in requests: the hash holds the level `l` at time `t` (µs, from
# Redis itself so processes on different hosts agree); it drains at limit/60 per second. The
# level is in requests, not time, so a changed limit applies at once to what was used.
# KEYS[1] = bucket; ARGV[1] = limit per minute.
# Returns {allowed (0/1), remaining, reset (unix s when empty again), retry_after_ms}.
_CHECK = """
local limit = tonumber(ARGV[1])
local tm = redis.call('TIME')
local now = tonumber(tm[1]) * 1000000 + tonumber(tm[2])
local v = redis.call('HMGET', KEYS[1], 'l', 't')
local level = tonumber(v[1]) or 0
local t = tonumber(v[2]) or now
level = level - (now - t) * limit / 60000000
if level < 0 then level = 0 end
if level + 1 > limit then
  local reset = math.ceil((now + level * 60000000 / limit) / 1000000)
  return {0, 0, reset, math.ceil((level + 1 - limit) * 60000 / limit)}
end
level = level + 1
redis.call('HSET', KEYS[1], 'l', string.format('%.9f', level), 't', string.format('%d', now))
redis.call('PEXPIRE', KEYS[1], math.ceil(level * 60000 / limit) + 1000)
return {1, math.floor(limit - level + 1e-6), math.ceil((now + level * 60000000 / limit) / 1000000), 0}
"""

# KEYS = buckets; ARGV = their limits. Reads without spending: {remaining, reset} per key.
_PEEK = """
local tm = redis.call('TIME')
local now = tonumber(tm[1]) * 1000000 + tonumber(tm[2])
local out = {}
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[i])
  local v = redis.call('HMGET', key, 'l', 't')
  local level = tonumber(v[1]) or 0
  local t = tonumber(v[2]) or now
  level = level - (now - t) * limit / 60000000
  if level < 0 then level = 0 end
  local remaining = math.floor(limit - level + 1e-6)
  if remaining < 0 then remaining = 0 end
  out[#out + 1] = remaining
  out[#out + 1] = math.ceil((now + level * 60000000 / limit) / 1000000)
end
return out
"""


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    reset: int
    retry_after_s: int


def default_limit(op: str) -> int:
    if op.startswith(("Get", "Query")) or op.endswith("Exists") or op in HIGH_VOLUME:
        return READ_LIMIT
    return WRITE_LIMIT


def limit_for(settings: dict[str, Any], op: str, ceiling: int = 0) -> int:
    """Per minute; 0 = unlimited. An operation's own setting wins over "default"; the
    operator's ceiling (BROADCASTER_MAX_RATE_LIMIT_PER_MIN) bounds all of them."""
    rl = settings.get("rate_limits") or {}
    if op in rl:
        v = int(rl[op])
    elif "default" in rl:
        v = int(rl["default"])
    else:
        v = default_limit(op)
    return int(capped(v, ceiling))


def bucket(app_id: int, op: str) -> str:
    return f"bc:rl:{app_id}:{op}"


class _State:
    scripts: dict[str, AsyncScript] = {}
    open_until = 0.0
    warned = 0.0


def _script(redis: Redis, name: str, text: str) -> AsyncScript:
    s = _State.scripts.get(name)
    if s is None:
        s = _State.scripts[name] = redis.register_script(text)
    return s


async def check(redis: Redis, app_id: int, op: str, limit: int) -> Verdict:
    r = await _script(redis, "check", _CHECK)(keys=[bucket(app_id, op)], args=[limit], client=redis)
    allowed, remaining, reset, retry_ms = (int(x) for x in r)
    return Verdict(bool(allowed), limit, max(0, remaining), reset, max(1, -(-retry_ms // 1000)))


async def peek(redis: Redis, app_id: int, ops: Sequence[tuple[str, int]]) -> list[tuple[int, int]]:
    """(remaining, reset) for each (operation, limit > 0), spending nothing."""
    if not ops:
        return []
    r = await _script(redis, "peek", _PEEK)(
        keys=[bucket(app_id, op) for op, _ in ops], args=[lim for _, lim in ops], client=redis
    )
    vals = [int(x) for x in r]
    return [(max(0, vals[i]), vals[i + 1]) for i in range(0, len(vals), 2)]


def _fail_open(e: BaseException) -> None:
    metrics.RATE_LIMIT_FAIL_OPEN.inc()
    now = time.monotonic()
    _State.open_until = now + BREAKER_S
    if now - _State.warned > 10:
        _State.warned = now
        logger.warning("rate limiter unavailable, serving requests unlimited: %s: %s",
                       type(e).__name__, e)


def headers(v: Verdict) -> dict[str, str]:
    # Lower case on the wire (header names are case-insensitive): the hosted API sends them so
    # and the Python SDK looks them up that way in a plain dict (StreamResponse.rate_limit()).
    return {"x-ratelimit-limit": str(v.limit), "x-ratelimit-remaining": str(v.remaining),
            "x-ratelimit-reset": str(v.reset)}


@web.middleware
async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    op = operation(request)
    if op is None or is_public(op) or request.match_info.http_exception is not None:
        return await handler(request)
    app = current_app(request)
    limit = limit_for(app.settings, op, request.app[SETTINGS].max_rate_limit_per_min)
    if limit <= 0:
        return await handler(request)
    if time.monotonic() < _State.open_until:
        metrics.RATE_LIMIT_FAIL_OPEN.inc()
        return await handler(request)
    try:
        async with asyncio.timeout(REDIS_TIMEOUT_S):
            v = await check(request.app[REDIS], app.id, op, limit)
    except (RedisError, OSError, TimeoutError) as e:
        _fail_open(e)
        return await handler(request)
    if not v.allowed:
        metrics.RATE_LIMITED.labels(op).inc()
        resp = error_response(
            request, 429, 9,
            f"too many requests for {op}: the limit is {limit} per minute, retry in {v.retry_after_s}s",
        )
        resp.headers.update(headers(v))
        resp.headers["Retry-After"] = str(v.retry_after_s)
        return resp
    try:
        out = await handler(request)
    except ApiError as e:
        out = error_response(request, e.status, e.code, e.message)
    except web.HTTPException as e:
        e.headers.update(headers(v))
        raise
    out.headers.update(headers(v))
    return out

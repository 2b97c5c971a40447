"""GET /rate_limits: every operation's limit, remaining budget and reset time."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from redis.exceptions import RedisError

from broadcaster import ratelimit
from broadcaster.api.v2 import operation_name
from broadcaster.http import ok
from broadcaster.keys import REDIS, SETTINGS
from broadcaster.middleware import current_app, is_public

routes = web.RouteTableDef()


@routes.get("/rate_limits", name="GetRateLimits")
async def get_rate_limits(request: web.Request) -> web.Response:
    app = current_app(request)
    # /api/v2 aliases (route names v2.<Operation>) share their root operation's budget.
    ops = sorted(op for op in {operation_name(n) or n for n in request.app.router.named_resources()}
                 if not is_public(op))
    wanted = request.query.get("endpoints")
    if wanted:
        names = {x.strip() for x in wanted.split(",") if x.strip()}
        ops = [op for op in ops if op in names]
    ceiling = request.app[SETTINGS].max_rate_limit_per_min
    limits = {op: ratelimit.limit_for(app.settings, op, ceiling) for op in ops}
    limited = [(op, lim) for op, lim in limits.items() if lim > 0]
    try:
        async with asyncio.timeout(ratelimit.REDIS_TIMEOUT_S):
            state = dict(zip(limited, await ratelimit.peek(request.app[REDIS], app.id, limited),
                             strict=True))
    except (RedisError, OSError, TimeoutError):
        state = {}  # limiter down: every budget is effectively full
    out: dict[str, Any] = {}
    for op, lim in limits.items():
        if lim <= 0:
            out[op] = {"limit": 0, "remaining": 0, "reset": 0, "unlimited": True}
            continue
        remaining, reset = state.get((op, lim), (lim, 0))
        out[op] = {"limit": lim, "remaining": remaining, "reset": reset}
    return ok(request, {"server_side": out})

"""Liveness and readiness probes (no auth)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from broadcaster.http import ok
from broadcaster.keys import POOL, REDIS

routes = web.RouteTableDef()


@routes.get("/healthz", name="Healthz")
async def healthz(request: web.Request) -> web.Response:
    return ok(request, {"status": "ok"})


@routes.get("/readyz", name="Readyz")
async def readyz(request: web.Request) -> web.Response:
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(2):
            await request.app[POOL].fetchval("SELECT 1")
        checks["postgres"] = "ok"
    except Exception as e:  # readiness reports any failure as data, never raises
        checks["postgres"] = f"error: {type(e).__name__}"
    try:
        async with asyncio.timeout(2):
            await request.app[REDIS].ping()
        checks["redis"] = "ok"
    except Exception as e:
        checks["redis"] = f"error: {type(e).__name__}"
    ready = all(v == "ok" for v in checks.values())
    return ok(request, {"status": "ok" if ready else "unavailable", "checks": checks},
              status=200 if ready else 503)

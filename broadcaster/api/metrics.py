"""GET /metrics: the API process's Prometheus metrics (no auth, like /healthz, unless
BROADCASTER_METRICS_TOKEN is set: then `Authorization: Bearer <token>`)."""

from __future__ import annotations

import asyncio
import hmac
import logging

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from broadcaster.errors import unauthorized
from broadcaster.keys import POOL, SETTINGS
from broadcaster.metrics import OUTBOX_DEPTH
from broadcaster.store import outbox

routes = web.RouteTableDef()
logger = logging.getLogger("broadcaster.metrics")


async def _refresh_outbox_depth(request: web.Request) -> None:
    # Measured at scrape time so every API process reports the same, current figure;
    # a slow or failing database leaves the last value rather than failing the scrape.
    try:
        async with asyncio.timeout(1):
            OUTBOX_DEPTH.set(await outbox.depth(request.app[POOL]))
    except Exception as e:
        logger.warning("outbox depth not measured: %s", type(e).__name__)


@routes.get("/metrics", name="Metrics")
async def metrics(request: web.Request) -> web.Response:
    token = request.app[SETTINGS].metrics_token
    if token and not hmac.compare_digest(request.headers.get("Authorization", "").encode(),
                                         f"Bearer {token}".encode()):
        raise unauthorized(5, "GET /metrics needs Authorization: Bearer <BROADCASTER_METRICS_TOKEN>")
    await _refresh_outbox_depth(request)
    resp = web.Response(body=generate_latest(REGISTRY))
    resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return resp

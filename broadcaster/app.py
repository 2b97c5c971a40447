"""The API process's composition root."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from arq import create_pool
from arq.connections import RedisSettings

from broadcaster import db, metrics, middleware, ratelimit
from broadcaster.api import setup_routes
from broadcaster.keys import HTTP, POOL, REDIS, SETTINGS
from broadcaster.settings import Settings


def redis_settings(settings: Settings) -> RedisSettings:
    rs = RedisSettings.from_dsn(settings.redis_url)
    rs.conn_timeout = 2
    rs.conn_retries = 1
    return rs


async def _pool_ctx(app: web.Application) -> AsyncIterator[None]:
    s = app[SETTINGS]
    app[POOL] = await db.create_pool(s.database_url, s.pool_min, s.pool_max)
    yield
    await app[POOL].close()


async def _redis_ctx(app: web.Application) -> AsyncIterator[None]:
    s = app[SETTINGS]
    app[REDIS] = await create_pool(redis_settings(s), default_queue_name=s.queue_name)
    yield
    await app[REDIS].aclose()


async def _http_ctx(app: web.Application) -> AsyncIterator[None]:
    app[HTTP] = aiohttp.ClientSession()
    yield
    await app[HTTP].close()


def create_app(settings: Settings) -> web.Application:
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[
            middleware.request_context, metrics.middleware, middleware.errors,
            middleware.authenticate, ratelimit.middleware,
        ],
    )
    app[SETTINGS] = settings
    app.cleanup_ctx.extend([_pool_ctx, _redis_ctx, _http_ctx])
    setup_routes(app)
    return app

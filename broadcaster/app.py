"""The API process's composition root."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp import web
from arq.connections import ArqRedis, RedisSettings
from arq.jobs import Job
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from broadcaster import db, keyring, metrics, middleware, ratelimit, secretbox
from broadcaster.api import setup_routes
from broadcaster.dashboard import setup_dashboard
from broadcaster.keys import CLICK_PIPE, HTTP, PLANNERS, POOL, REDIS, SETTINGS
from broadcaster.logs import log
from broadcaster.services import clickpipe
from broadcaster.settings import Settings
from broadcaster.store import apps

logger = logging.getLogger("broadcaster.app")


def redis_settings(settings: Settings) -> RedisSettings:
    rs = RedisSettings.from_dsn(settings.redis_url)
    rs.conn_timeout = 2
    rs.conn_retries = 1
    return rs


async def _pool_ctx(app: web.Application) -> AsyncIterator[None]:
    s = app[SETTINGS]
    secretbox.configure(s.secret_key)
    try:
        app[POOL] = await db.create_pool(s.database_url, s.pool_min, s.pool_max, s.api_command_timeout_s)
    except Exception as e:
        if not db.unavailable(e):
            raise
        # Serve anyway: requests answer 503 until PostgreSQL accepts connections, then the
        # pool connects on demand (nothing to restart).
        log(logger, logging.WARNING, "PostgreSQL unreachable at startup; answering 503 until it is back",
            error=f"{type(e).__name__}: {e}")
        app[POOL] = await db.create_pool(s.database_url, 0, s.pool_max, s.api_command_timeout_s)
    try:
        await keyring.load(s, app[POOL])
    except Exception as e:
        if not db.unavailable(e):
            raise  # else the first authenticated request loads it (middleware.authenticate)
    if s.secret_key:
        try:
            sealed = await apps.seal_plain(app[POOL])
        except Exception as e:
            if not db.unavailable(e):
                raise
            sealed = 0  # PostgreSQL not there yet: the next start seals them
        if sealed:
            log(logger, logging.INFO, "encrypted app secrets stored in plain text", count=sealed)
    yield
    await app[POOL].close()


async def _redis_ctx(app: web.Application) -> AsyncIterator[None]:
    s = app[SETTINGS]
    app[REDIS] = queue_client(redis_settings(s), s.queue_name)
    try:
        async with asyncio.timeout(5):
            await app[REDIS].ping()
    except (RedisError, OSError) as e:
        # redis-py connects per command: the client works as soon as Redis is back. Until
        # then rate limits fail open, enqueues are skipped and /readyz says 503.
        log(logger, logging.WARNING, "Redis unreachable at startup; serving without it until it is back",
            error=f"{type(e).__name__}: {e}")
    yield
    await app[REDIS].aclose()


class ApiQueue(ArqRedis):
    """The API's arq client. Its enqueues are best-effort: PostgreSQL holds the truth and the
    workers' periodic jobs re-enqueue what is missing (the campaign tick plans a started
    campaign and its lost batches, the size sweep unsized segments). So with Redis down a
    campaign start or a segment create still succeeds instead of failing after its commit."""

    _warned = 0.0

    async def enqueue_job(self, function: str, *args: Any, **kwargs: Any) -> Job | None:
        try:
            return await super().enqueue_job(function, *args, **kwargs)
        except (RedisConnectionError, RedisTimeoutError, OSError) as e:
            now = time.monotonic()
            if now - ApiQueue._warned > 5:
                ApiQueue._warned = now
                log(logger, logging.WARNING, "Redis unreachable; job left to the workers' periodic sweep",
                    function=function, error=f"{type(e).__name__}: {e}")
            return None


def queue_client(rs: RedisSettings, queue_name: str) -> ApiQueue:
    """arq's pool as create_pool makes it, minus the connect-and-ping at creation."""
    pool = ApiQueue(host=rs.host, port=rs.port, unix_socket_path=rs.unix_socket_path,
                    db=rs.database, username=rs.username, password=rs.password, ssl=rs.ssl,
                    socket_connect_timeout=rs.conn_timeout, encoding="utf8")
    pool.default_queue_name = queue_name
    return pool


PLANNER_GRACE_S = 5.0


async def _planners_ctx(app: web.Application) -> AsyncIterator[None]:
    """Audience copies still running at shutdown get a few seconds, then are cancelled (rolled
    back): the workers' tick redoes them (services/planning.reap)."""
    app[PLANNERS] = set()
    yield
    live: set[asyncio.Task[object]] = app[PLANNERS]
    if live:
        _, pending = await asyncio.wait(list(live), timeout=PLANNER_GRACE_S)
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


async def _http_ctx(app: web.Application) -> AsyncIterator[None]:
    app[HTTP] = aiohttp.ClientSession()
    yield
    await app[HTTP].close()


async def _clickpipe_ctx(app: web.Application) -> AsyncIterator[None]:
    """After the pool's: the click appender of this process and, where enabled, its drainer."""
    s = app[SETTINGS]
    pipe = app[CLICK_PIPE] = clickpipe.ClickPipe(app[POOL], s.click_drain_s)
    task = asyncio.get_running_loop().create_task(pipe.drain_forever()) if s.click_drainer else None
    yield
    if task is not None:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task


def create_app(settings: Settings) -> web.Application:
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[
            middleware.request_context, metrics.middleware, middleware.errors,
            middleware.authenticate, ratelimit.middleware,
        ],
    )
    app[SETTINGS] = settings
    app.cleanup_ctx.extend([_pool_ctx, _redis_ctx, _planners_ctx, _http_ctx, _clickpipe_ctx])
    setup_routes(app)
    setup_dashboard(app)
    return app

"""The worker process's composition root: arq WorkerSettings with startup/shutdown."""

from __future__ import annotations

from typing import Any

import aiohttp
from arq.worker import Worker

from broadcaster import db, jobs, logs, metrics
from broadcaster.app import redis_settings
from broadcaster.settings import Settings


async def ping(ctx: dict[str, Any]) -> str:
    """A trivial job: proves a worker is consuming the queue (and keeps arq happy with no others)."""
    return "pong"


async def on_startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx["settings"]
    ctx["pool"] = await db.create_pool(settings.database_url, 2, max(4, settings.worker_max_jobs + 2))
    ctx["http"] = aiohttp.ClientSession()
    if settings.worker_metrics_port:
        metrics.serve_worker_metrics(settings.worker_metrics_port)


async def on_shutdown(ctx: dict[str, Any]) -> None:
    if "http" in ctx:
        await ctx["http"].close()
    if "pool" in ctx:
        await ctx["pool"].close()


def build_worker(settings: Settings, *, burst: bool = False) -> Worker:
    return Worker(
        functions=metrics.instrument([ping, *jobs.functions()]),
        cron_jobs=metrics.instrument(jobs.cron_jobs()),
        redis_settings=redis_settings(settings),
        queue_name=settings.queue_name,
        on_startup=on_startup,
        on_shutdown=on_shutdown,
        ctx={"settings": settings},
        max_jobs=settings.worker_max_jobs,
        # FIELD-NOTES: arq's default 0.5 s poll caps a backlog at ~200 jobs/s.
        poll_delay=0.02,
        job_timeout=3600,
        keep_result=0,
        max_tries=1000,
        burst=burst,
        handle_signals=True,
    )


def run(settings: Settings) -> None:
    logs.setup(settings.log_level)
    build_worker(settings).run()

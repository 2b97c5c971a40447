"""The worker process's composition root: two arq Workers sharing one PostgreSQL pool.

The main Worker runs the queue's jobs (campaign batches, segment sizes and purges). The
periodic jobs (the 1 s campaign tick, the webhook pump ticks, the size sweep) run in a second
Worker of the same process on its own queue (`<queue>:periodic`) with its own job slots, so
they never wait behind batches: with one queue, a backlog of batches (or of an app's
rate-limited ones) delayed scheduled starts, stop_at and webhook delivery for as long as the
backlog lasted. The periodic Worker lives inside the main one (started by its on_startup,
ended by its on_shutdown), so whatever runs, restarts or stops the main Worker does the same
to both; if the periodic one fails on its own it is rebuilt after a short backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from typing import Any

import aiohttp
from arq.connections import ArqRedis, create_pool
from arq.worker import Worker

from broadcaster import db, jobs, keyring, logs, metrics, secretbox, supervise
from broadcaster.app import redis_settings
from broadcaster.settings import Settings

logger = logging.getLogger("broadcaster.worker")
PERIODIC_RETRY_S = (0.5, 1.0, 2.0, 5.0)


async def ping(ctx: dict[str, Any]) -> str:
    """A trivial job: proves a worker is consuming the queue (and keeps arq happy with no others)."""
    return "pong"


def periodic_queue(settings: Settings) -> str:
    return f"{settings.queue_name}:periodic"


def build_periodic_worker(settings: Settings, shared: dict[str, Any], redis: ArqRedis) -> Worker:
    """Cron jobs only; `shared` holds the main Worker's pool and HTTP session. `redis` enqueues
    into the main queue by default (the tick enqueues batches, the sweep size jobs), while the
    Worker polls and schedules its crons on its own queue (arq names that one explicitly)."""
    return Worker(
        functions=[],
        cron_jobs=supervise.calm_during_outages(metrics.instrument(jobs.cron_jobs())),
        redis_pool=redis,
        queue_name=periodic_queue(settings),
        ctx={"settings": settings, "pool": shared["pool"], "http": shared["http"],
             "planners": shared.setdefault("planners", set())},
        # the tick, the size sweep and the webhook pump's lanes, with room for overlap
        max_jobs=8,
        poll_delay=0.05,
        job_timeout=3600,
        keep_result=0,
        max_tries=1,
        handle_signals=False,
    )


async def _close(w: Worker) -> None:
    """Cancel the Worker's jobs (cron jobs are re-enqueued by the next tick anyway) and close
    its Redis pool; never raises."""
    w.handle_sig(signal.SIGUSR1)
    for t in list(w.tasks.values()):
        with contextlib.suppress(BaseException):
            await t
    w.tasks.clear()
    with contextlib.suppress(Exception):
        await w.close()


async def _run_periodic(settings: Settings, shared: dict[str, Any]) -> None:
    failures = 0
    while True:
        w: Worker | None = None
        try:
            redis = await create_pool(redis_settings(settings), default_queue_name=settings.queue_name)
            w = build_periodic_worker(settings, shared, redis)
            await w.async_run()
        except asyncio.CancelledError:
            if w is not None:
                await _close(w)
            raise
        except Exception:
            logger.exception("periodic worker failed; rebuilding it")
        if w is not None:
            await _close(w)
        await asyncio.sleep(PERIODIC_RETRY_S[min(failures, len(PERIODIC_RETRY_S) - 1)])
        failures += 1


async def on_startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx["settings"]
    secretbox.configure(settings.secret_key)  # webhook signatures need the app secrets revealed
    ctx["pool"] = await db.create_pool(settings.database_url, 2, max(4, settings.worker_max_jobs + 4))
    await keyring.load(settings, ctx["pool"])  # click-link tokens derive from the cursor key
    ctx["http"] = aiohttp.ClientSession()
    if settings.worker_metrics_port:
        metrics.serve_worker_metrics(settings.worker_metrics_port, token=settings.metrics_token)
    ctx["periodic"] = asyncio.create_task(_run_periodic(settings, ctx))


async def on_shutdown(ctx: dict[str, Any]) -> None:
    task = ctx.pop("periodic", None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
    # Audience copies of the tick (services/planning.py): cancelled, so rolled back; another
    # worker's tick redoes them.
    planners: set[asyncio.Task[object]] = ctx.get("planners", set())
    for t in list(planners):
        t.cancel()
    await asyncio.gather(*planners, return_exceptions=True)
    if "http" in ctx:
        await ctx["http"].close()
    if "pool" in ctx:
        await ctx["pool"].close()


def build_worker(settings: Settings, *, burst: bool = False) -> Worker:
    return Worker(
        functions=metrics.instrument([ping, *jobs.functions()]),
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


def epoch_marker(queue_name: str) -> str:
    """The Redis key whose absence tells a starting worker that Redis lost its jobs."""
    return f"{queue_name}:epoch"


async def requeue_after_redis_reset(ctx: dict[str, Any]) -> None:
    """A Redis that came back empty (restarted without persistence, or a new one) lost every
    queued batch. The first worker to start on it (SET NX of a marker key: one of many)
    re-enqueues the open batches of every in-progress campaign at once, instead of leaving
    them to the tick, which finds a batch lost only when its lease has run out (30 s after
    it was queued). Duplicates are harmless: a batch runs under its row lock and done flag."""
    from broadcaster.services import campaigns as use_cases
    from broadcaster.store import campaigns

    settings: Settings = ctx["settings"]
    marker = epoch_marker(settings.queue_name)
    if not await ctx["redis"].set(marker, "1", nx=True):
        return
    try:
        async with ctx["pool"].acquire() as conn:
            live = [r for r in await campaigns.due(conn) if r["status"] == "in_progress"]
            for r in live:
                await use_cases.kick(ctx["redis"], conn, r["app_id"], r["id"], all_open=True)
    except BaseException:
        with contextlib.suppress(Exception):  # the next start (after the backoff) tries again
            await ctx["redis"].delete(marker)
        raise
    if live:
        logger.warning("Redis had no jobs (new or restarted empty): re-enqueued open batches",
                       extra={"fields": {"campaigns": len(live)}})


# A batch allocates tens of thousands of short-lived containers (records, render dicts, row
# lists), nearly all freed by reference counting. At the default thresholds (700, 10, 10)
# the cycle collector still ran every few hundred allocations and a full pass over every
# live object every few batches. What is alive once the process has imported everything
# (modules, settings, the pools' classes) is frozen out of those passes.
GC_THRESHOLDS = (50_000, 20, 20)


def tune_gc() -> None:
    """For the worker process only (in-process test workers keep the interpreter's defaults)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def run(settings: Settings) -> None:
    """`broadcaster worker`: arq workers under supervise.run, which rebuilds them after a
    Redis or PostgreSQL outage instead of exiting."""
    logs.setup(settings.log_level)
    supervise.quiet_periodic(c.name for c in jobs.cron_jobs())
    tune_gc()
    supervise.run(lambda: build_worker(settings), after_startup=requeue_after_redis_reset)

"""The worker process's run loop: one arq Worker at a time, rebuilt after a dependency outage.

arq's Worker.main() raises as soon as a Redis call fails (its poll loop has no retry) and its
on_startup raises while PostgreSQL is unreachable; arq's own run() then exits the process.
Here a failure that means "Redis or PostgreSQL is unreachable" is logged, the worker's
in-flight jobs get a short grace to finish (their PostgreSQL work is idempotent and leased,
so whatever they leave undone the campaign tick re-enqueues from PostgreSQL), its pools are
closed, and after a capped exponential backoff a fresh Worker (new Redis connection, new
PostgreSQL pool, new HTTP session) carries on. Only SIGTERM/SIGINT, or an error that is not
an outage (a bug), end the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import random
import signal
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from arq.cron import CronJob
from arq.worker import Retry, Worker

from broadcaster import outages
from broadcaster.logs import log

logger = logging.getLogger("broadcaster.worker")

BACKOFF_START_S = 0.5
BACKOFF_MAX_S = 15.0
# A worker that ran this long before failing starts the backoff again from the bottom.
HEALTHY_AFTER_S = 30.0
# A job that hit an outage runs again this much later (arq Retry) instead of failing for good.
JOB_RETRY_DEFER_S = 2.0
# In-flight jobs may finish their PostgreSQL transaction before they are cancelled.
JOB_GRACE_S = 5.0
CLOSE_TIMEOUT_S = 10.0


def outage(exc: BaseException) -> bool:
    """Redis or PostgreSQL unreachable (worth a retry), as opposed to a bug."""
    return outages.dependency(exc) is not None


def backoff(attempt: int) -> float:
    """Capped exponential with jitter, so restarted workers do not reconnect in lockstep."""
    base = min(BACKOFF_MAX_S, BACKOFF_START_S * 2 ** max(0, attempt - 1))
    return base * random.uniform(0.75, 1.0)


def _retrying(coroutine: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(coroutine)
    async def run(ctx: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return await coroutine(ctx, *args, **kwargs)
        except Exception as e:
            if not outage(e):
                raise
            log(logger, logging.WARNING, "job hit an outage; arq runs it again",
                job=ctx.get("job_id"), error=f"{type(e).__name__}: {e}")
            raise Retry(defer=JOB_RETRY_DEFER_S) from e

    return run


def retry_on_outage(worker: Worker) -> None:
    """Jobs that fail because PostgreSQL (or Redis) went away are re-queued by arq after a
    short defer rather than dropped; without this a batch picked during a PostgreSQL outage
    waited for its lease to expire (up to 30 s) before the tick re-enqueued it. Jobs are
    idempotent, so running one again is always safe. Cron jobs and single-try jobs (the
    webhook pump) are left alone: their next run is at most a second away anyway."""
    for name, f in list(worker.functions.items()):
        if isinstance(f, CronJob) or f.max_tries == 1:
            continue
        worker.functions[name] = dataclasses.replace(f, coroutine=_retrying(f.coroutine))


class _OutageNotes:
    """Which periodic jobs are in an outage now, so each says so once, not every second."""

    def __init__(self) -> None:
        self.down: dict[str, str] = {}

    def failed(self, name: str, exc: BaseException) -> None:
        what = outages.dependency(exc) or "a dependency"
        if name not in self.down:
            log(logger, logging.WARNING, "periodic job paused by an outage; it runs again each tick",
                job=name, dependency=what, error=f"{type(exc).__name__}: {exc}"[:300])
        self.down[name] = what

    def ok(self, name: str) -> None:
        what = self.down.pop(name, None)
        if what is not None:
            log(logger, logging.INFO, "periodic job running again", job=name, dependency=what)


OUTAGE_NOTES = _OutageNotes()


def _calm(name: str, coroutine: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(coroutine)
    async def run(ctx: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        try:
            result = await coroutine(ctx, *args, **kwargs)
        except Exception as e:
            if not outage(e):
                raise
            OUTAGE_NOTES.failed(name, e)
            return None
        OUTAGE_NOTES.ok(name)
        return result

    return run


def calm_during_outages(crons: list[Any]) -> list[Any]:
    """Cron jobs that meet a PostgreSQL or Redis outage log one line when it starts and one
    when it ends, instead of arq's traceback every second; the next tick simply tries again.
    A bug (any other exception) still fails the job with arq's traceback."""
    return [dataclasses.replace(c, coroutine=_calm(c.name, c.coroutine)) for c in crons]


class QuietPeriodic(logging.Filter):
    """arq logs every job's start and finish at INFO: with the 1 s campaign tick and webhook
    tick that is two lines a second each from an idle worker. Periodic jobs' lines go to DEBUG
    (shown only at BROADCASTER_LOG_LEVEL=DEBUG), except a finish line whose result says the
    job did something (a non-zero count); failures and retries keep arq's levels."""

    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or not isinstance(record.args, tuple) or len(record.args) < 2:
            return True
        fmt, ref = str(record.msg), record.args[1]
        if ref not in self.names:
            return True
        idle = "→" in fmt or ("←" in fmt and str(record.args[-1]) in ("", "0", "None"))
        if not idle:
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger("arq.worker").getEffectiveLevel() <= logging.DEBUG


QUIET = QuietPeriodic()


def quiet_periodic(names: Iterable[str]) -> None:
    """Lower the idle lines of these periodic jobs (arq names: `cron:<function>` or the
    cron's own name), whichever Worker of the process runs them."""
    QUIET.names.update(names)
    arq_logger = logging.getLogger("arq.worker")
    if QUIET not in arq_logger.filters:
        arq_logger.addFilter(QUIET)


Hook = Callable[[dict[str, Any]], Awaitable[None]]


def _after_startup(worker: Worker, hook: Hook) -> None:
    """Run hook(ctx) once the Worker's own on_startup has connected everything."""
    inner = worker.on_startup

    async def startup(ctx: dict[str, Any]) -> None:
        if inner is not None:
            await inner(ctx)
        await hook(ctx)

    worker.on_startup = startup


class Supervisor:
    def __init__(self, build: Callable[[], Worker], after_startup: Hook | None = None) -> None:
        self.build = build
        self.after_startup = after_startup
        self.stopping = asyncio.Event()
        self.worker: Worker | None = None
        self.restarts = 0

    def _signal(self, signum: signal.Signals) -> None:
        if self.stopping.is_set():
            return
        log(logger, logging.INFO, "worker stopping", signal=signum.name)
        self.stopping.set()
        if self.worker is not None:
            # arq's own handler: cancels running jobs (arq re-queues them) and its main task.
            self.worker.handle_sig(signum)

    def _own_signals(self) -> None:
        # arq's Worker registers its handlers when built; ours replace them so that a signal
        # also ends this loop instead of only the current Worker.
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._signal, sig)

    async def run(self) -> None:
        attempt = 0
        while not self.stopping.is_set():
            self.worker = self.build()
            retry_on_outage(self.worker)
            if self.after_startup is not None:
                _after_startup(self.worker, self.after_startup)
            self._own_signals()
            started = time.monotonic()
            try:
                await self.worker.async_run()
                failure: BaseException | None = None
            except asyncio.CancelledError:
                if not self.stopping.is_set():
                    raise
                failure = None
            except Exception as e:
                if not outage(e):
                    await self._close(self.worker, graceful=False)
                    raise
                failure = e
            failed_at = time.monotonic()
            await self._close(self.worker, graceful=failure is None)
            self.worker = None
            if self.stopping.is_set() or failure is None:
                return
            attempt = 1 if time.monotonic() - started > HEALTHY_AFTER_S else attempt + 1
            delay = backoff(attempt)
            self.restarts += 1
            log(logger, logging.WARNING, "worker lost a dependency; restarting",
                error=f"{type(failure).__name__}: {failure}", retry_in_s=round(delay, 2),
                teardown_s=round(time.monotonic() - failed_at, 2),
                attempt=attempt)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), delay)

    async def _close(self, worker: Worker, *, graceful: bool) -> None:
        """Tear a Worker down without trusting its connections: arq's close() awaits the
        job tasks and then talks to Redis, either of which raises or hangs during an outage."""
        tasks = list(worker.tasks.values())
        if tasks and not graceful:
            await asyncio.wait(tasks, timeout=JOB_GRACE_S)
        for t in tasks:
            if not t.done():
                t.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=CLOSE_TIMEOUT_S)
        for t in tasks:
            if t.done() and not t.cancelled() and t.exception() is not None:
                log(logger, logging.DEBUG, "job task ended with an error during shutdown",
                    error=repr(t.exception()))
        pool: Any = worker._pool  # None when Redis was never reached
        if pool is not None and graceful:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await pool.delete(worker.health_check_key)
        if worker.on_shutdown is not None and "redis" in worker.ctx:
            try:
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    await worker.on_shutdown(worker.ctx)
            except Exception as e:
                log(logger, logging.WARNING, "worker shutdown step failed", error=repr(e))
                if "pool" in worker.ctx:
                    worker.ctx["pool"].terminate()
        if pool is not None:
            with contextlib.suppress(Exception):
                await pool.close(close_connection_pool=True)
            worker._pool = None


def run(build: Callable[[], Worker], after_startup: Hook | None = None) -> None:
    """Run workers built by `build` until SIGTERM/SIGINT (the `broadcaster worker` process);
    `after_startup(ctx)` runs each time one has started (first start and every rebuild)."""
    asyncio.run(Supervisor(build, after_startup).run())

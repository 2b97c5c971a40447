"""The 1 s tick of recurring series (SPEC 5A): due occurrences start runs, ended series
complete (the use cases are in services/recurring.py)."""

from __future__ import annotations

import logging
from typing import Any

from arq import cron

from broadcaster.errors import ApiError
from broadcaster.jobs.campaigns import planners
from broadcaster.services import planning
from broadcaster.services.recurring import complete_ended, handle_due
from broadcaster.store import runs

logger = logging.getLogger("broadcaster.jobs.recurring")


async def series_tick(ctx: dict[str, Any]) -> None:
    pool, redis, s = ctx["pool"], ctx["redis"], ctx["settings"]
    async with pool.acquire() as conn:
        for r in await runs.due_series(conn):
            try:
                started = await handle_due(conn, r["app_id"], r["id"], s.database_url)
                if started is not None:
                    planning.begin(started.planner, pool, redis, started.run, s.batch_size, planners(ctx))
            except ApiError:
                continue  # deleted meanwhile
            except Exception:
                logger.exception("recurring tick failed", extra={"fields": {"campaign": r["id"]}})
        for r in await runs.ended_series(conn):
            try:
                await complete_ended(conn, r["app_id"], r["id"])
            except ApiError:
                continue


FUNCTIONS: list[Any] = []
CRON = [cron(series_tick, second=None, unique=True, timeout=30)]

"""Campaign jobs: one job per batch, and the 1 s tick (the use cases are in services/).

Every job is idempotent. PostgreSQL holds the truth (status, batch boundaries, done flags,
leases); Redis only carries jobs, so a lost job (worker SIGKILLed, Redis restarted) is found
by the tick through its expired lease and enqueued again under a new job id.
"""

from __future__ import annotations

import asyncio
from typing import Any

from arq import cron

from broadcaster.services import batches
from broadcaster.services import campaigns as use_cases


async def campaign_batch(
    ctx: dict[str, Any], app_id: int, cid: str, no: int, reserved: bool = False,
) -> str:
    return await batches.run(ctx["pool"], ctx["redis"], ctx["settings"], app_id, cid, no, reserved)


async def campaign_tick(ctx: dict[str, Any]) -> None:
    s = ctx["settings"]
    await use_cases.tick(ctx["pool"], ctx["redis"], s.batch_size, s.database_url, planners(ctx))


def planners(ctx: dict[str, Any]) -> set[asyncio.Task[object]]:
    """The audience copies this worker process runs in the background (worker.py cancels
    them at shutdown: rolled back, redone by the next tick's reap)."""
    return ctx.setdefault("planners", set())  # type: ignore[no-any-return]


FUNCTIONS = [campaign_batch]
CRON = [cron(campaign_tick, second=None, unique=True, timeout=30)]

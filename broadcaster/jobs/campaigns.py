"""Campaign jobs: one job per batch, and the 1 s tick (the use cases are in services/).

Every job is idempotent. PostgreSQL holds the truth (status, batch boundaries, done flags,
leases); Redis only carries jobs, so a lost job (worker SIGKILLed, Redis restarted) is found
by the tick through its expired lease and enqueued again under a new job id.
"""

from __future__ import annotations

from typing import Any

from arq import cron

from broadcaster.services import batches
from broadcaster.services import campaigns as use_cases


async def campaign_batch(
    ctx: dict[str, Any], app_id: int, cid: str, no: int, reserved: bool = False,
) -> str:
    return await batches.run(ctx["pool"], ctx["redis"], ctx["settings"], app_id, cid, no, reserved)


async def campaign_tick(ctx: dict[str, Any]) -> None:
    await use_cases.tick(ctx["pool"], ctx["redis"], ctx["settings"].batch_size)


FUNCTIONS = [campaign_batch]
CRON = [cron(campaign_tick, second=None, unique=True, timeout=30)]

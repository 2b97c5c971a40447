"""Webhook jobs, each a cron:

- `webhooks_deliver` (every second): runs the dispatcher's pump when a pump slot is free;
  the pump routes and delivers while work remains, so no event waits more than about a
  second and a killed worker's slot and claimed deliveries are taken over by the others.
- `webhooks_purge` (every minute): retention, failed deliveries older than
  BROADCASTER_WEBHOOK_RETENTION_DAYS deleted PURGE_BATCH rows per short transaction.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from arq.cron import cron
from arq.worker import func

from broadcaster.store import deliveries
from broadcaster.webhooks import dispatch

PURGE_BATCH = 1000  # rows per statement: each a few milliseconds of locks, never a long one
PURGE_PAUSE_S = 0.05
PURGE_SECONDS = 30.0


async def webhooks_deliver(ctx: dict[str, Any]) -> int:
    return await dispatch.pump(ctx)


async def webhooks_purge(ctx: dict[str, Any]) -> int:
    """Purge failed deliveries past retention; returns how many were deleted."""
    days = ctx["settings"].webhook_retention_days
    if days <= 0:  # 0 keeps them forever
        return 0
    deadline = time.monotonic() + PURGE_SECONDS
    total = 0
    while time.monotonic() < deadline:
        n = await deliveries.purge_failed(ctx["pool"], days * 86400, PURGE_BATCH)
        total += n
        if n < PURGE_BATCH:
            break
        await asyncio.sleep(PURGE_PAUSE_S)  # delivery's statements go in between
    return total


FUNCTIONS = [func(webhooks_deliver, timeout=dispatch.PUMP_SECONDS + 60, max_tries=1),
             func(webhooks_purge, timeout=PURGE_SECONDS + 30, max_tries=1)]
CRON = [
    cron(webhooks_deliver, name="webhooks_deliver", second=set(range(60)), run_at_startup=True,
         timeout=dispatch.PUMP_SECONDS + 60),
    cron(webhooks_purge, name="webhooks_purge", second={30}, run_at_startup=True,
         timeout=PURGE_SECONDS + 30),
]

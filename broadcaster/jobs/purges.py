"""`campaign_purge` (every 5 s): the rows of deleted large campaigns (store/purges.py), a chunk
per short transaction, oldest delete first, until none is left or the job's time is up.

Idempotent and shared: each chunk commits with its progress, and a purge row is locked SKIP
LOCKED while a worker works on it, so two workers purge two campaigns, never one twice."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from arq.cron import cron
from arq.worker import func

from broadcaster.store import purges

logger = logging.getLogger("broadcaster.jobs.purges")

CHUNK = 10_000  # rows per transaction: tens of milliseconds of row locks, never a long one
PAUSE_S = 0.02  # the fan-out's statements go in between
SECONDS = 20.0


async def campaign_purge(ctx: dict[str, Any], chunk: int = CHUNK) -> int:
    """Returns how many rows were deleted."""
    pool = ctx["pool"]
    deadline = time.monotonic() + SECONDS
    total = 0
    while time.monotonic() < deadline:
        async with pool.acquire() as conn, conn.transaction():
            got = await purges.next_purges(conn)
            if got is None:
                break
            app_id, ids = got
            n, done = await purges.purge_chunk(conn, app_id, ids, chunk)
        total += n
        if done:
            logger.info("deleted campaigns of app %s purged: %s", app_id, ", ".join(ids[:5]) +
                        (f" and {len(ids) - 5} more" if len(ids) > 5 else ""))
        await asyncio.sleep(PAUSE_S)
    return total


FUNCTIONS = [func(campaign_purge, timeout=SECONDS + 30, max_tries=1)]
CRON = [cron(campaign_purge, name="campaign_purge", second=set(range(0, 60, 5)), unique=True,
             run_at_startup=True, timeout=SECONDS + 30)]

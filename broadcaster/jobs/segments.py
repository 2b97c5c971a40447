"""Segment jobs: the background size of filter/all_users segments, and target purges.

Both are idempotent: a size is written only for the filter version it was computed for,
and a purge only touches the targets of a key no live segment holds.
"""

from __future__ import annotations

import logging
from typing import Any

from arq import cron

from broadcaster.store import segments, targets

logger = logging.getLogger("broadcaster.jobs.segments")


async def segment_size(ctx: dict[str, Any], key: int, version: int) -> int | None:
    from broadcaster import filters

    pool = ctx["pool"]
    seg = await segments.by_key(pool, key)
    if seg is None or seg.size_version != version or seg.all_sender_channels or seg.explicit:
        return None
    params = filters.Params(start=[seg.app_id])
    if seg.type == "user":
        where = filters.compile_filter(seg.filter or {}, filters.USER_SCHEMA, params)
        table = "users"
    else:
        where = filters.compile_filter(seg.filter or {}, filters.CHANNEL_SCHEMA, params)
        table = "channels"
    n = await segments.count_matching(pool, table, seg.app_id, where, params.values[1:])
    await segments.set_size(pool, key, version, n)
    return n


async def segment_purge(ctx: dict[str, Any], key: int) -> int:
    return await targets.purge(ctx["pool"], key)


async def segment_size_sweep(ctx: dict[str, Any]) -> int:
    """Re-enqueue size jobs that were lost (Redis down at create); job ids dedupe the rest."""
    rows = await segments.unsized(ctx["pool"])
    for seg in rows:
        await ctx["redis"].enqueue_job(
            "segment_size", seg.key, seg.size_version, _job_id=f"segsize:{seg.key}:{seg.size_version}"
        )
    return len(rows)


FUNCTIONS = [segment_size, segment_purge, segment_size_sweep]
CRON = [cron(segment_size_sweep, second={7}, run_at_startup=False, unique=True)]

"""The planner's belief about `channels` before a batch write plans its 1:1 pair probe.

Two states of `pg_class` make the planner take `channels` for empty however large it grows:
relpages 0 and reltuples 0 (vacuumed while empty: what a fresh installation's first VACUUM,
or the bench's settle, leaves) planned while the table still has no block, and relpages > 0
with reltuples 0 (an ANALYZE that sampled it while its first rows were uncommitted: zero rows
per page). Every access path then costs ~0, and the write's pair probe (store/distinct.probe)
is planned on `channels_app_created` with `app_id` alone: each of a batch's 2,000 probes walks
all the app's channel entries, the in-flight batches' too, while they grow. Such a batch ran
30-120 s (docs/scaling.md, the first-batches stall).

A reltuples of 0 is therefore cleared before a batch write (pg_clear_relation_stats, PG 18):
"never analyzed" makes the planner estimate from the table's real size, which plans the probe
on `channels_distinct_pair` in every state, until autoanalyze records committed rows. One
catalog row per batch; the clear waits at most 50 ms for its lock (a running VACUUM or
ANALYZE of the table holds it, and corrects the statistics itself)."""

from __future__ import annotations

import logging

import asyncpg

from broadcaster.store.ledger import Conn, Tx

logger = logging.getLogger("broadcaster.store.planstats")
_BELIEVED_EMPTY = "SELECT reltuples = 0 FROM pg_class WHERE oid = 'channels'::regclass"


async def believed_empty(conn: Conn) -> bool:
    return bool(await conn.fetchval(_BELIEVED_EMPTY))


async def refresh(conn: Tx) -> bool:
    """Outside a transaction: clear `channels`' statistics if they say it holds no row.
    Returns whether it did."""
    if not await believed_empty(conn):
        return False
    try:
        async with conn.transaction():
            await conn.execute("SET LOCAL lock_timeout = '50ms'")
            await conn.execute("SELECT pg_clear_relation_stats(current_schema(), 'channels')")
    except (asyncpg.InsufficientPrivilegeError, asyncpg.LockNotAvailableError):
        return False  # not the table's owner, or a vacuum or analyze of it running: it corrects them
    logger.info("channels' statistics cleared: they said it holds no row")
    return True

"""The planner's belief about `channels` before a batch write plans its 1:1 pair probe.

An ANALYZE that samples `channels` while its first rows are still uncommitted (a fresh
cluster's first campaign: its first batches in flight) records pages but no live row
(relpages > 0, reltuples = 0). The planner then takes the table for empty however large it
grows, until the next analyze, and the write's pair probe (store/distinct.probe) is planned
on `channels_app_created` with `app_id` alone as its condition: every probe scans all the
app's channels. Such a batch ran 30-120 s while the other batches grew the table (gdb:
ExecSubPlan -> IndexNext -> heap_hot_search_buffer under the write's CTE `x`), one run in
two at 200k recipients and one in four at 1M (docs/scaling.md). Checked per batch (one
catalog row) and analyzed again when it holds, by one session at a time."""

from __future__ import annotations

import logging

import asyncpg

from broadcaster.store.ledger import Conn

logger = logging.getLogger("broadcaster.store.planstats")
_BELIEVED_EMPTY = "SELECT relpages > 0 AND reltuples = 0 FROM pg_class WHERE oid = 'channels'::regclass"
_KEY = "hashtextextended('analyze:channels', 0)"


async def believed_empty(conn: Conn) -> bool:
    return bool(await conn.fetchval(_BELIEVED_EMPTY))


async def refresh(conn: Conn) -> bool:
    """Outside a transaction: analyze `channels` again if the planner believes it empty
    while it has pages. Returns whether it did. Concurrent callers wait for the one that
    analyzes and then find the belief corrected."""
    if not await believed_empty(conn):
        return False
    await conn.execute(f"SELECT pg_advisory_lock({_KEY})")
    try:
        if not await believed_empty(conn):
            return False
        try:
            await conn.execute("ANALYZE channels")
        except asyncpg.InsufficientPrivilegeError:  # not the table's owner: autovacuum's analyze will do
            return False
        logger.warning("channels analyzed again: its statistics said empty while it had pages")
        return True
    finally:
        await conn.execute(f"SELECT pg_advisory_unlock({_KEY})")

"""The fan-out engine's batch bookkeeping: leases, lost batches, the batch row (its writing is
store/fanwrite.py).

A batch runs under a KEY SHARE lock on its campaign row (stop/pause/exclude take it FOR UPDATE,
so they wait for in-flight batches and every later batch sees the new status) and a row lock
on its batch row (two copies of one job serialise; the second finds it done).
"""

from __future__ import annotations

from typing import Any

import asyncpg

from broadcaster.store.campaigns import QUEUED_LEASE_S
from broadcaster.store.ledger import Conn, Tx

RUNNING_LEASE_S = 10  # a started one not done by then (worker killed) is re-enqueued


async def batch_row(conn: Tx, app_id: int, cid: str, no: int) -> asyncpg.Record | None:
    """The batch's range and state, locked: two copies of one job serialise here."""
    return await conn.fetchrow(
        "SELECT after_id, upto_id, n, done, planned_at FROM campaign_batches WHERE app_id = $1 AND campaign_id = $2"
        " AND batch_no = $3 FOR UPDATE", app_id, cid, no,
    )


async def open_batches(conn: Conn, app_id: int, cid: str) -> list[tuple[int, int]]:
    """Batches whose job is presumed lost: a started one whose lease is over (its worker died),
    or a queued one whose lease is over while no batch of the campaign got done for a queued
    lease's time (the queue is not draining: Redis lost it). A long campaign's queue drains
    for longer than one queued lease, and its batches are not lost meanwhile. Bumps tries;
    returns (batch_no, tries).

    A row locked by a live batch transaction (batch_row's FOR UPDATE) is skipped, not waited
    for: its batch is running, so it is not lost. Waiting made every tick hang behind one slow
    batch (a 1M bench run: a first batch stuck in its statement for the workers' 120 s bound,
    and every tick meanwhile cancelled at its 30 s timeout, 8 at a time filling the periodic
    worker's slots, with every other campaign's and app's tick work behind them)."""
    rows = await conn.fetch(
        "WITH lost AS (SELECT batch_no FROM campaign_batches"
        "  WHERE app_id = $1 AND campaign_id = $2 AND NOT done AND lease_until < now()"
        "   AND (started_at IS NOT NULL OR NOT EXISTS (SELECT 1 FROM campaign_batches d"
        "     WHERE d.app_id = $1 AND d.campaign_id = $2 AND d.done"
        f"     AND d.done_at > now() - interval '{QUEUED_LEASE_S} s'))"
        "  FOR UPDATE SKIP LOCKED)"
        f" UPDATE campaign_batches b SET tries = b.tries + 1, lease_until = now() + interval '{QUEUED_LEASE_S} s',"
        " started_at = NULL FROM lost WHERE b.app_id = $1 AND b.campaign_id = $2 AND b.batch_no = lost.batch_no"
        " RETURNING b.batch_no, b.tries", app_id, cid,
    )
    return [(r[0], r[1]) for r in rows]


async def requeue_open(conn: Tx, app_id: int, cid: str) -> list[tuple[int, int]]:
    """Every batch not done (a start or resume enqueues them all, and a worker finding Redis
    empty): bump tries; (batch_no, tries). A row a live batch transaction holds is skipped,
    as in open_batches: that batch is running (a worker starting beside it waited for it)."""
    rows = await conn.fetch(
        "WITH open AS (SELECT batch_no FROM campaign_batches WHERE app_id = $1 AND campaign_id = $2"
        "  AND NOT done FOR UPDATE SKIP LOCKED)"
        f" UPDATE campaign_batches b SET tries = b.tries + 1, lease_until = now() + interval '{QUEUED_LEASE_S} s',"
        " started_at = NULL FROM open WHERE b.app_id = $1 AND b.campaign_id = $2 AND b.batch_no = open.batch_no"
        " RETURNING b.batch_no, b.tries", app_id, cid,
    )
    return [(r[0], r[1]) for r in rows]


# Set inside a statement of its own implicit transaction, the setting holds until that
# transaction's commit, which is what reads it: one round trip, no BEGIN/SET/COMMIT.
ASYNC_COMMIT = "set_config('synchronous_commit', 'off', true)"


async def lease(
    conn: Tx, app_id: int, cid: str, no: int, seconds: float = RUNNING_LEASE_S, *, durable: bool = True,
) -> int | None:
    """Claim a batch for running; returns its planned size, None when it is already done.
    durable=False commits without waiting for the WAL flush: a lease lost with the last
    moments of a PostgreSQL crash leaves the batch as it was before, queued or lost, and the
    tick finds it either way (the batch transaction after it commits the same way:
    services/batches)."""
    r = await conn.fetchval(
        "UPDATE campaign_batches SET lease_until = now() + make_interval(secs => $4), started_at = now()"
        " WHERE app_id = $1 AND campaign_id = $2 AND batch_no = $3 AND NOT done"
        + ("" if durable else f" AND {ASYNC_COMMIT} IS NOT NULL") + " RETURNING n",
        app_id, cid, no, float(seconds),
    )
    return int(r) if r is not None else None


async def app_settings(conn: Tx, app_id: int) -> dict[str, Any]:
    return await conn.fetchval("SELECT settings FROM apps WHERE id = $1", app_id) or {}  # type: ignore[no-any-return]


def webhooks_enabled(camp: asyncpg.Record, app_settings: dict[str, Any]) -> bool:
    """message.new/channel.created go to the outbox only if some receiver is configured."""
    if camp["skip_webhook"]:
        return False
    s = app_settings
    return bool(s.get("webhook_url")) or any(h.get("enabled", True) for h in s.get("event_hooks") or [])

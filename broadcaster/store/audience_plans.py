"""The SQL of fixing an audience outside the start request (services/planning.py): the
planner's advisory lock, its recorded outcome (campaign_plans, 0180) and the marking that
makes a campaign planned."""

from __future__ import annotations

import asyncpg

from broadcaster.errors import bad_request
from broadcaster.store.campaigns import COLUMNS
from broadcaster.store.ledger import Conn, Tx

# One key per campaign: the planner holds it for its whole transaction, so "in progress, not
# planned, lock free" means the planner is gone (its connection closed, PostgreSQL rolled it
# back). A hash collision between two campaigns only makes one wait for the other.
_KEY = "hashtextextended('plan:' || $1::bigint || ':' || $2::text, 0)"


async def hold(conn: Tx, app_id: int, cid: str) -> None:
    """Wait for and take the campaign's planning lock until the transaction ends."""
    await conn.execute(f"SELECT pg_advisory_xact_lock({_KEY})", app_id, cid)


async def try_hold(conn: Tx, app_id: int, cid: str) -> bool:
    """Take the planning lock until the transaction ends, False when a planner holds it."""
    return bool(await conn.fetchval(f"SELECT pg_try_advisory_xact_lock({_KEY})", app_id, cid))


async def check_idle(conn: Tx, app_id: int, cid: str) -> None:
    """Refuse to delete a campaign (stopped while) still being planned: its planner would
    commit an audience and batches for a campaign that is gone, under an id reusable later."""
    if not await try_hold(conn, app_id, cid):
        raise bad_request(f"campaign {cid!r} is still fixing its audience: delete it once that is done")


async def record(conn: Tx, app_id: int, cid: str, recipients: int, batches: int) -> None:
    await conn.execute(
        "INSERT INTO campaign_plans (app_id, campaign_id, recipients, batches) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (app_id, campaign_id) DO UPDATE SET recipients = EXCLUDED.recipients,"
        " batches = EXCLUDED.batches", app_id, cid, recipients, batches)


async def recorded(conn: Conn, app_id: int, cid: str) -> bool:
    return bool(await conn.fetchval(
        "SELECT 1 FROM campaign_plans WHERE app_id = $1 AND campaign_id = $2", app_id, cid))


async def mark(conn: Conn, app_id: int, cid: str) -> asyncpg.Record | None:
    """Move a recorded plan onto its campaign (planned, recipients_total exact); None when
    there is none or the campaign was planned already. A plan whose campaign was deleted
    meanwhile is dropped all the same."""
    return await conn.fetchrow(
        "WITH p AS (DELETE FROM campaign_plans WHERE app_id = $1 AND campaign_id = $2"
        " RETURNING recipients, batches)"
        " UPDATE campaigns SET planned = true, recipients_total = p.recipients, plan_batches = p.batches"
        f" FROM p WHERE app_id = $1 AND id = $2 AND NOT planned RETURNING {COLUMNS}", app_id, cid)


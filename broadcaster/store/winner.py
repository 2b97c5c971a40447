"""The A/B winner flow's state changes (SPEC 5C); services/winner.py drives them."""

from __future__ import annotations

import asyncpg

from broadcaster.store.ledger import Conn, Tx

_OPEN = ("EXISTS (SELECT 1 FROM campaign_batches b WHERE b.app_id = c.app_id AND b.campaign_id = c.id"
         " AND NOT b.done)")


async def state(conn: Conn, app_id: int, cid: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT c.winner, c.winner_phase, c.winner_at <= now() AS due, c.status, c.planned, c.message_template,"
        f" {_OPEN} AS open FROM campaigns c WHERE c.app_id = $1 AND c.id = $2 AND c.winner IS NOT NULL",
        app_id, cid,
    )


async def to_waiting(conn: Conn, app_id: int, cid: str, wait_s: int) -> None:
    """The test pass is over (planned, every batch done, nobody held by the delivery policy):
    wait `wait_s` for its results."""
    await conn.execute(
        f"UPDATE campaigns c SET winner_phase = 'waiting', winner_at = now() + make_interval(secs => $3),"
        f" updated_at = now() WHERE c.app_id = $1 AND c.id = $2 AND c.status = 'in_progress' AND c.planned"
        f" AND c.winner_phase IS NULL AND NOT {_OPEN} AND NOT EXISTS (SELECT 1 FROM campaign_held h"
        f" WHERE h.app_id = c.app_id AND h.campaign_id = c.id)", app_id, cid, float(wait_s),
    )


async def lock_waiting(conn: Tx, app_id: int, cid: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT plan_batches FROM campaigns WHERE app_id = $1 AND id = $2 AND status = 'in_progress'"
        " AND winner_phase = 'waiting' AND winner_at <= now() FOR UPDATE", app_id, cid,
    )


async def to_sending(conn: Tx, app_id: int, cid: str, variant: str, plan_batches: int) -> None:
    """The winner goes to the rest: a second pass over the same ranges, numbered on from
    plan_batches, leased in the past so the tick enqueues them; each finds only the recipients
    without a ledger row (the test audience has one)."""
    await conn.execute(
        "UPDATE campaigns SET winner_phase = 'sending', winner_variant = $3, updated_at = now()"
        " WHERE app_id = $1 AND id = $2", app_id, cid, variant,
    )
    await conn.execute(
        "INSERT INTO campaign_batches (app_id, campaign_id, batch_no, after_id, upto_id, n, lease_until)"
        " SELECT app_id, campaign_id, batch_no + $3, after_id, upto_id, n, now() - interval '1 s'"
        " FROM campaign_batches WHERE app_id = $1 AND campaign_id = $2 AND batch_no < $3"
        " ON CONFLICT DO NOTHING", app_id, cid, plan_batches,
    )

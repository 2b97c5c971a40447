"""Delivery policy rows (SPEC 5B): recipients held back by a batch (campaign_held) and the
range claims that keep frequency caps exact (the counted sends are ledger rows' capped_at).
See 0100_policy.sql and 0170_caps_from_ledger.sql."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from broadcaster.store.ledger import Conn, Tx

# The policy's clock: PostgreSQL's (every process agrees on it), shifted by the database
# setting broadcaster.clock_offset (an interval) when one is set: the tests move it to see
# local times arrive and quiet hours end; nothing sets it otherwise.
NOW = "(now() + coalesce(nullif(current_setting('broadcaster.clock_offset', true), ''), '0 s')::interval)"


async def now(conn: Conn) -> datetime:
    return await conn.fetchval(f"SELECT {NOW}")  # type: ignore[no-any-return]


async def user_zones(conn: Conn, app_id: int) -> list[str]:
    """The distinct `timezone` fields of the app's live users (one scan, at a local-time start)."""
    rows = await conn.fetch(
        "SELECT DISTINCT custom->>'timezone' FROM users WHERE app_id = $1 AND deleted_at IS NULL"
        " AND custom ? 'timezone'", app_id)
    return [r[0] for r in rows if r[0]]


async def hold(
    conn: Tx, app_id: int, cid: str, bounds: tuple[str | None, str],
    held: Sequence[tuple[str, datetime, str]],
) -> None:
    """In the batch's transaction: these (target, due, reason) are held; every other held row
    of the batch's range was decided now (sent or skipped) and goes. A row held again keeps
    the range it was first held in (the one its release batches cover)."""
    await conn.execute(
        "WITH h AS (SELECT * FROM unnest($5::text[], $6::timestamptz[], $7::text[]) AS h(t, d, r)),"
        " del AS (DELETE FROM campaign_held c WHERE c.app_id = $1 AND c.campaign_id = $2"
        "  AND c.target_id > coalesce($3, '') AND c.target_id <= $4 AND c.target_id NOT IN (SELECT t FROM h))"
        " INSERT INTO campaign_held (app_id, campaign_id, target_id, after_id, upto_id, due_at, reason)"
        " SELECT $1, $2, t, $3, $4, d, r FROM h ORDER BY t"
        " ON CONFLICT (app_id, campaign_id, target_id) DO UPDATE SET due_at = EXCLUDED.due_at,"
        "  reason = EXCLUDED.reason",
        app_id, cid, bounds[0], bounds[1], [h[0] for h in held], [h[1] for h in held], [h[2] for h in held])


async def has_held(conn: Conn, app_id: int, cid: str) -> bool:
    return bool(await conn.fetchval(
        "SELECT 1 FROM campaign_held WHERE app_id = $1 AND campaign_id = $2 LIMIT 1", app_id, cid))


async def due_ranges(conn: Conn) -> list[asyncpg.Record]:
    """Ranges with a held recipient now due, of campaigns in progress (the due_at index)."""
    return await conn.fetch(
        f"SELECT DISTINCT h.app_id, h.campaign_id, h.after_id, h.upto_id FROM campaign_held h"
        " JOIN campaigns c ON c.app_id = h.app_id AND c.id = h.campaign_id AND c.status = 'in_progress'"
        f" WHERE h.due_at <= {NOW}")


async def add_release_batch(
    conn: Tx, app_id: int, cid: str, after: str | None, upto: str, lease_s: float,
) -> int | None:
    """In a transaction: a batch over a range whose held recipients are (partly) due, unless an
    open batch overlaps the range (it reads them itself, or this range's release is already
    queued). Its n is every recipient still held in the range: the batch reads all of them
    as pending and holds again the ones not due yet. Returns the batch number."""
    status = await conn.fetchval(
        "SELECT status FROM campaigns WHERE app_id = $1 AND id = $2 FOR NO KEY UPDATE", app_id, cid)
    if status != "in_progress":
        return None
    busy = await conn.fetchval(
        "SELECT 1 FROM campaign_batches WHERE app_id = $1 AND campaign_id = $2 AND NOT done"
        " AND coalesce(after_id, '') < $4 AND coalesce($3, '') < upto_id LIMIT 1", app_id, cid, after, upto)
    if busy:
        return None
    # an A/B winner's second pass will be numbered plan_batches.. (store/winner.to_sending):
    # release batches are numbered past it
    no = await conn.fetchval(
        "INSERT INTO campaign_batches (app_id, campaign_id, batch_no, after_id, upto_id, n, lease_until)"
        " SELECT $1, $2, (SELECT greatest(coalesce(max(b.batch_no) + 1, 0), (SELECT CASE WHEN c.winner IS NOT NULL"
        "   THEN 2 * c.plan_batches ELSE 0 END FROM campaigns c WHERE c.app_id = $1 AND c.id = $2))"
        "   FROM campaign_batches b WHERE b.app_id = $1 AND b.campaign_id = $2), $3, $4, count(*),"
        "   now() + make_interval(secs => $5)"
        " FROM campaign_held WHERE app_id = $1 AND campaign_id = $2 AND target_id > coalesce($3, '')"
        "  AND target_id <= $4 HAVING count(*) > 0 RETURNING batch_no",
        app_id, cid, after, upto, float(lease_s))
    return int(no) if no is not None else None


async def claim(conn: Tx, app_id: int, bounds: tuple[str | None, str]) -> datetime:
    """In the batch's transaction, before counting: hold its range of user ids until it
    commits; a batch of another campaign over an overlapping range waits here for this one's
    commit, then sees its sends (0170_caps_from_ledger.sql). Returns the policy clock (the
    transaction's: one round trip for both)."""
    r = await conn.fetchrow(f"SELECT policy_claim($1, $2, $3), {NOW} AS now", app_id, bounds[0], bounds[1])
    assert r is not None
    return r["now"]  # type: ignore[no-any-return]


async def capped(
    conn: Tx, app_id: int, user_ids: list[str], now: datetime, caps: Sequence[tuple[int, float]],
) -> set[str]:
    """Of these users, the ones some cap (max, period in seconds) already has `max` counted
    sends for within the period ending `now`: one index scan each over the ledger's counted
    sends and the kept ones of deleted campaigns, within the longest period, grouped once by
    user with one filtered count per cap (a join of the sends to the caps, regrouped per
    cap and made distinct, did the same work three times over)."""
    params: list[Any] = [app_id, user_ids, now, max(c[1] for c in caps)]
    having = []
    for m, secs in caps:
        params += [m, float(secs)]
        having.append(f"count(*) FILTER (WHERE s.at > $3::timestamptz - make_interval(secs => ${len(params)}))"
                      f" >= ${len(params) - 1}")
    rows = await conn.fetch(
        "WITH s AS (SELECT r.user_id AS u, r.capped_at AS at FROM campaign_recipients r"
        "   WHERE r.app_id = $1 AND r.user_id = ANY($2::text[]) AND r.capped_at > $3::timestamptz - make_interval(secs => $4)"
        # kept sends are rare: the scan only runs when the app has any (a one-time filter)
        "  UNION ALL SELECT k.user_id, k.at FROM policy_kept k"
        "   WHERE EXISTS (SELECT 1 FROM policy_kept e WHERE e.app_id = $1) AND k.app_id = $1"
        "   AND k.user_id = ANY($2::text[]) AND k.at > $3::timestamptz - make_interval(secs => $4))"
        " SELECT s.u FROM s GROUP BY s.u HAVING " + " OR ".join(having), *params)
    return {r[0] for r in rows}

"""Due triggers into the audience: a batch over each campaign's new users, and the
occurrence campaigns of a triggered campaign with once_per_user false (0120_trigger_occurrences.sql).

A user's n-th send of such a campaign goes to its occurrence n: the campaign itself for
n = 1, a child campaign (parent_id, run_no = n) for n >= 2, each with its own audience and
ledger keyed by the user as every campaign's are, so the one send path, the policy, reads,
clicks and conversions need nothing else.
"""

from __future__ import annotations

import secrets
from collections import defaultdict

import asyncpg

from broadcaster.store import campaigns
from broadcaster.store.ledger import Tx

MAX_PARENT_ID = 240  # room for "-occ-<n>" within the 255 characters of an id


def occurrence_id(parent_id: str, n: int) -> str:
    return f"{parent_id}-occ-{n}"


async def family_busy(conn: Tx, app_id: int, cid: str) -> bool:
    """An open batch of the campaign or of one of its occurrences (one at a time for them all,
    so each batch's range holds only its own new users)."""
    return bool(await conn.fetchval(
        "SELECT 1 FROM campaign_batches b WHERE b.app_id = $1 AND NOT b.done AND b.campaign_id IN"
        " (SELECT id FROM campaigns WHERE app_id = $1 AND (id = $2 OR parent_id = $2)) LIMIT 1", app_id, cid))


async def batch_over(conn: Tx, app_id: int, cid: str, lo: str, hi: str, n: int, lease_s: float) -> int:
    """A batch over the n users just appended to the audience, lo..hi. Its range (after, hi]
    starts at the audience id just below lo: the older ids inside it were all written by
    earlier batches (no batch was open), so its pending recipients are exactly the new ones."""
    after = await conn.fetchval(
        "SELECT max(target_id) FROM campaign_audience WHERE app_id = $1 AND campaign_id = $2 AND target_id < $3",
        app_id, cid, lo)
    no = await conn.fetchval(
        "INSERT INTO campaign_batches (app_id, campaign_id, batch_no, after_id, upto_id, n, lease_until)"
        " SELECT $1, $2, coalesce(max(batch_no) + 1, 0), $3, $4, $5, now() + make_interval(secs => $6)"
        " FROM campaign_batches WHERE app_id = $1 AND campaign_id = $2 RETURNING batch_no",
        app_id, cid, after, hi, n, float(lease_s))
    await conn.execute("UPDATE campaigns SET recipients_total = recipients_total + $3 WHERE app_id = $1 AND id = $2",
                       app_id, cid, n)
    return int(no)


async def _child(conn: Tx, parent: asyncpg.Record, n: int) -> str:
    """Occurrence n's campaign id, made now (a copy of the parent's content, in_progress,
    never listening itself) if it does not exist yet; an id already taken by another
    campaign gets a random suffix."""
    got = await conn.fetchval("SELECT id FROM campaigns WHERE app_id = $1 AND parent_id = $2 AND run_no = $3",
                              parent["app_id"], parent["id"], n)
    if got is not None:
        return str(got)
    cols = ", ".join((*campaigns.EDITABLE_CONTENT, "send_in_local_time", "local_send_at", "delay"))
    cid = occurrence_id(parent["id"], n)
    while True:
        made = await conn.fetchval(
            f"INSERT INTO campaigns (app_id, id, {cols}, type, parent_id, run_no, status, kind, planned,"
            f" started_at, once_per_user) SELECT app_id, $3, {cols}, 'triggered', id, $4, 'in_progress', 'user',"
            " false, now(), false FROM campaigns WHERE app_id = $1 AND id = $2 ON CONFLICT (app_id, id) DO NOTHING"
            " RETURNING id", parent["app_id"], parent["id"], cid, n)
        if made is not None:
            return str(made)
        cid = f"{occurrence_id(parent['id'], n)}-{secrets.token_hex(4)}"


async def append_repeated(
    conn: Tx, parent: asyncpg.Record, limit: int, lease_s: float,
) -> tuple[list[tuple[str, int]], bool]:
    """once_per_user false, in a transaction holding the campaign row with no batch of it or
    its occurrences open: each due trigger (oldest first) is its user's next occurrence, and
    joins that occurrence's audience; one batch per occurrence campaign covers them. Returns
    ((campaign id, batch number) to enqueue, whether more triggers may be due)."""
    app_id, pid = parent["app_id"], parent["id"]
    rows = await conn.fetch(
        "WITH due AS (SELECT event_id, user_id, due_at FROM campaign_triggers WHERE app_id = $1"
        "  AND campaign_id = $2 AND status = 'pending' AND due_at <= now() ORDER BY due_at, event_id LIMIT $3"
        "  FOR UPDATE),"
        " prior AS (SELECT d.user_id, (SELECT coalesce(max(t.occurrence), 0) FROM campaign_triggers t"
        "  WHERE t.app_id = $1 AND t.campaign_id = $2 AND t.user_id = d.user_id AND t.status = 'queued') AS n"
        "  FROM (SELECT DISTINCT user_id FROM due) d),"
        " num AS (SELECT due.event_id, due.user_id, prior.n + row_number() OVER (PARTITION BY due.user_id"
        "  ORDER BY due.due_at, due.event_id) AS occ FROM due JOIN prior USING (user_id))"
        " UPDATE campaign_triggers t SET status = 'queued', reason = NULL, occurrence = num.occ FROM num"
        " WHERE t.app_id = $1 AND t.campaign_id = $2 AND t.event_id = num.event_id RETURNING num.event_id, num.user_id, num.occ",
        app_id, pid, limit)
    by_occ: dict[int, list[str]] = defaultdict(list)
    evs: dict[int, list[str]] = defaultdict(list)
    for r in rows:
        by_occ[int(r["occ"])].append(r["user_id"])
        evs[int(r["occ"])].append(r["event_id"])
    out: list[tuple[str, int]] = []
    for n in sorted(by_occ):
        cid = pid if n == 1 else await _child(conn, parent, n)
        got = await conn.fetchrow(
            "WITH ins AS (INSERT INTO campaign_audience (app_id, campaign_id, target_id)"
            " SELECT $1, $2, u FROM unnest($3::text[]) u ORDER BY u ON CONFLICT DO NOTHING RETURNING target_id)"
            " SELECT min(target_id) AS lo, max(target_id) AS hi, count(*) AS n FROM ins", app_id, cid, by_occ[n])
        assert got is not None
        if not got["n"]:
            continue
        no = await batch_over(conn, app_id, cid, got["lo"], got["hi"], int(got["n"]), lease_s)
        await conn.execute("UPDATE campaign_triggers SET batch_no = $3 WHERE app_id = $1 AND campaign_id = $2"
                           " AND event_id = ANY($4::text[])", app_id, pid, no, evs[n])
        out.append((cid, no))
    return out, len(rows) >= limit


_FOLLOWS = {"pause": ("in_progress",), "resume": ("paused",), "stop": ("in_progress", "paused")}


async def follow_status(conn: Tx, parent: asyncpg.Record, action: str) -> list[str]:
    """The parent (locked FOR UPDATE) is being paused, resumed or stopped: so are its
    occurrences (each locked FOR UPDATE, which waits for its in-flight batch). No campaign.*
    event of their own: the parent's says it. Returns their ids."""
    kids = await conn.fetch(
        f"SELECT {campaigns.COLUMNS} FROM campaigns WHERE app_id = $1 AND parent_id = $2 AND status = ANY($3::text[])"
        " ORDER BY run_no FOR UPDATE", parent["app_id"], parent["id"], list(_FOLLOWS[action]))
    for k in kids:
        await campaigns.set_status(conn, k, action)
    return [k["id"] for k in kids]


async def follow_parent(conn: Tx, parent: asyncpg.Record) -> None:
    """The parent's content was updated: its occurrences send the new content too."""
    cols = (*campaigns.EDITABLE_CONTENT, "send_in_local_time", "local_send_at", "delay")
    sets = ", ".join(f"{c} = p.{c}" for c in cols)
    await conn.execute(
        f"UPDATE campaigns c SET {sets}, updated_at = now() FROM campaigns p WHERE p.app_id = $1 AND p.id = $2"
        " AND c.app_id = $1 AND c.parent_id = $2", parent["app_id"], parent["id"])

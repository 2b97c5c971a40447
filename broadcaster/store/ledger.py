"""The per-recipient ledger and the counters derived from it.

Counters are written by the transaction that writes the ledger rows (a batch's sums on its
campaign_batches row, reads in campaign_minutes, per variant in campaign_variant_counts), so stats are always the ledger's counts.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from broadcaster import timefmt
from broadcaster.errors import bad_request, not_found
from broadcaster.store import occurrence_views, variant_counts

Conn = asyncpg.Pool | asyncpg.Connection | PoolConnectionProxy
Tx = asyncpg.Connection | PoolConnectionProxy  # something that can open a transaction
STATUSES = ("pending", "sent", "skipped", "errored", "read")
# interaction counters of campaign_minutes (read: on_read; conversions: store/conversions)
FUNNEL_COUNTERS = ("read", "conversions", "users_converted")


async def stats_many(conn: Conn, app_id: int, ids: list[str]) -> dict[str, dict[str, Any]]:
    """Counters per campaign; a recurring series' are the sums over its runs, a triggered
    campaign's its own plus its occurrences', except that its users counters count distinct
    users (SPEC 5A; store/occurrence_views.py)."""
    rows = await conn.fetch(
        "SELECT id, parent_id, recipients_total, type FROM campaigns WHERE app_id = $1 AND parent_id = ANY($2::text[])",
        app_id, ids) if ids else []
    if not rows:
        return await _stats_direct(conn, app_id, ids)
    kids = {r["id"]: r["parent_id"] for r in rows}
    asked = set(ids)
    out = await _stats_direct(conn, app_id, [*ids, *(k for k in kids if k not in asked)])
    own: dict[str, int] = {p["id"]: int(p["recipients_total"]) for p in await conn.fetch(
        # a triggered campaign sends occurrence 1 itself (store/occurrences.py)
        "SELECT id, recipients_total FROM campaigns WHERE app_id = $1 AND id = ANY($2::text[])",
        app_id, list({r["parent_id"] for r in rows}))}
    for r in rows:
        parent = out[r["parent_id"]]
        parent["recipients_total"] = (parent.get("recipients_total", own.get(r["parent_id"], 0))
                                      + int(r["recipients_total"]))
    users = ("users_sent", "read", "users_clicked", "users_converted")
    own_users = {p: {k: int(out[p].get("sent" if k == "users_sent" else k, 0)) for k in users}
                 for p in {r["parent_id"] for r in rows if r["type"] == "triggered"}}
    for kid, parent_id in kids.items():
        mine, parent = (out[kid] if kid in asked else out.pop(kid)), out[parent_id]
        for k, v in mine.items():
            if k == "revenue":
                for cur, amount in v.items():
                    parent["revenue"][cur] = parent["revenue"].get(cur, 0.0) + amount
            elif isinstance(v, int):
                parent[k] = parent.get(k, 0) + v
    for p, own in own_users.items():
        extra = await occurrence_views.distinct_users(
            conn, app_id, p, [r["id"] for r in rows if r["parent_id"] == p])
        out[p].update({k: own[k] + extra[k] for k in users})
    return out


async def _stats_direct(conn: Conn, app_id: int, ids: list[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {i: {"revenue": {}} for i in ids}
    for r in await conn.fetch(
        "SELECT campaign_id, coalesce(sum(n), 0) AS processed, coalesce(sum(sent), 0) AS sent,"
        " coalesce(sum(errored), 0) AS errored, coalesce(sum(skipped), 0) AS skipped,"
        " coalesce(sum(channels_created), 0) AS channels_created"
        " FROM campaign_batches WHERE app_id = $1 AND campaign_id = ANY($2::text[]) AND done"
        " GROUP BY campaign_id", app_id, ids,
    ):
        out[r["campaign_id"]].update({k: int(r[k]) for k in ("processed", "sent", "errored", "skipped", "channels_created")})
    for r in await conn.fetch(
        "SELECT campaign_id, sum(read) AS read, sum(conversions) AS conversions,"
        " sum(users_converted) AS users_converted FROM campaign_minutes"
        " WHERE app_id = $1 AND campaign_id = ANY($2::text[]) GROUP BY campaign_id", app_id, ids,
    ):
        out[r["campaign_id"]].update({k: int(r[k]) for k in FUNNEL_COUNTERS})
    for r in await conn.fetch(
        "SELECT campaign_id, sum(clicks) AS clicks, sum(users_clicked) AS users_clicked"
        " FROM campaign_click_counts WHERE app_id = $1 AND campaign_id = ANY($2::text[])"
        " GROUP BY campaign_id", app_id, ids,
    ):
        out[r["campaign_id"]].update({k: int(r[k]) for k in ("clicks", "users_clicked")})
    for r in await conn.fetch(
        "SELECT campaign_id, currency, amount FROM campaign_revenue WHERE app_id = $1"
        " AND campaign_id = ANY($2::text[]) ORDER BY campaign_id, currency", app_id, ids,
    ):
        out[r["campaign_id"]]["revenue"][r["currency"]] = float(r["amount"])
    await variant_counts.fill(conn, app_id, ids, out)
    return out


def row_view(r: asyncpg.Record) -> dict[str, Any]:
    out: dict[str, Any] = {"target_id": r["target_id"], "status": r["status"]}
    for k in ("user_id", "channel_cid", "message_id", "error"):
        if r[k] is not None:
            out[k] = r[k]
    for k in ("sent_at", "read_at"):
        if r[k] is not None:
            out[k] = timefmt.fmt(r[k])
    return out


_LEDGER_COLS = "target_id, user_id, channel_cid, message_id, status, error, sent_at, read_at"
# Every recipient of the fixed audience, with its ledger row if it has one (none = pending):
# a merge of two primary-key walks in target order.
_AUDIENCE_PAGE = (
    "SELECT a.target_id, r.user_id, r.channel_cid, r.message_id, coalesce(r.status, 'pending') AS status,"
    " r.error, r.sent_at, r.read_at FROM campaign_audience a LEFT JOIN campaign_recipients r"
    " ON r.app_id = a.app_id AND r.campaign_id = a.campaign_id AND r.target_id = a.target_id"
    " WHERE a.app_id = $1 AND a.campaign_id = $2 AND {pending} {keyset} ORDER BY a.target_id {dir} LIMIT {limit}"
)
_LEDGER_PAGE = (
    f"SELECT {_LEDGER_COLS} FROM campaign_recipients a WHERE a.app_id = $1 AND a.campaign_id = $2"
    " AND ($3::text IS NULL OR a.status = $3) {keyset} ORDER BY a.target_id {dir} LIMIT {limit}"
)


async def page(
    conn: Conn, app_id: int, cid: str, status: str | None, *, planned: bool,
    after: str | None = None, before: str | None = None, limit: int,
) -> list[asyncpg.Record]:
    """Recipients in target_id order: after `after` (ascending), or the `limit` ones just
    before `before` (returned ascending). Once the audience is fixed (planned) every recipient
    is listed, `pending` until its batch commits; before that only ledger rows (exclusions)."""
    keyset, arg = "", after
    if before is not None:
        keyset, arg = "AND a.target_id < $4", before
    elif after is not None:
        keyset = "AND a.target_id > $4"
    d = "DESC" if before is not None else "ASC"
    args: list[Any] = [app_id, cid]
    if planned and status in (None, "pending"):
        sql = _AUDIENCE_PAGE.format(
            pending="r.target_id IS NULL" if status == "pending" else "true",
            keyset=keyset.replace("$4", "$3"), dir=d, limit=int(limit))
    elif status == "pending":
        return []
    else:
        sql = _LEDGER_PAGE.format(keyset=keyset, dir=d, limit=int(limit))
        args.append(status)
    if keyset:
        args.append(arg)
    rows = list(await conn.fetch(sql, *args))
    if before is not None:
        rows.reverse()
    return rows


async def in_audience(conn: Conn, app_id: int, cid: str, target_id: str) -> bool:
    return bool(await conn.fetchval(
        "SELECT 1 FROM campaign_audience WHERE app_id = $1 AND campaign_id = $2 AND target_id = $3",
        app_id, cid, target_id,
    ))


async def exclude(conn: Tx, app_id: int, cid: str, target_id: str) -> None:
    """Write the recipient's final ledger row now, so its batch (which skips ids that already
    have a row) never sends to it. The caller holds the campaign row lock, so no batch of
    this campaign is between reading the ledger and committing."""
    r = await conn.fetchrow(
        "INSERT INTO campaign_recipients (app_id, campaign_id, target_id, status, error)"
        " VALUES ($1, $2, $3, 'skipped', 'excluded') ON CONFLICT DO NOTHING RETURNING 1",
        app_id, cid, target_id,
    )
    if r is None:
        cur = await conn.fetchval(
            "SELECT status FROM campaign_recipients WHERE app_id = $1 AND campaign_id = $2"
            " AND target_id = $3", app_id, cid, target_id,
        )
        raise bad_request(f"recipient {target_id!r} is already {cur}: only pending recipients can be removed")


async def on_read(conn: Tx, app_id: int, cid: str, user_id: str) -> int:
    """The read endpoint: campaign messages in this channel for this reader become `read`.
    Called inside mark_read's transaction."""
    rows = await conn.fetch(
        "UPDATE campaign_recipients r SET status = 'read', read_at = now()"
        " FROM (SELECT DISTINCT campaign_id FROM messages WHERE app_id = $1 AND cid = $2"
        "       AND campaign_id IS NOT NULL) m"
        " WHERE r.app_id = $1 AND r.campaign_id = m.campaign_id AND r.target_id IN ($3, $2)"
        " AND r.channel_cid = $2 AND r.status = 'sent' RETURNING r.campaign_id, r.variant_id, r.target_id",
        app_id, cid, user_id,
    )
    if not rows:
        return 0
    await variant_counts.add_reads(conn, app_id, rows)
    await conn.execute(
        "INSERT INTO campaign_minutes (app_id, campaign_id, minute, read)"
        " SELECT $1, c, date_trunc('minute', now()), count(*) FROM unnest($2::text[]) c GROUP BY c"
        " ON CONFLICT (app_id, campaign_id, minute) DO UPDATE SET read = campaign_minutes.read + EXCLUDED.read",
        app_id, [r[0] for r in rows],
    )
    return len(rows)


async def ensure_campaign(conn: Conn, app_id: int, cid: str) -> None:
    if not await conn.fetchval("SELECT 1 FROM campaigns WHERE app_id = $1 AND id = $2", app_id, cid):
        raise not_found(f"campaign {cid!r}")

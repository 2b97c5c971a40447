"""A repeating triggered campaign (once_per_user false) seen as one campaign: its recipients,
interactions, timeline and distinct-user counters over itself and its occurrence campaigns
`<id>-occ-<n>` (store/occurrences.py), which hold a user's 2nd, 3rd... sends.

Rows of the family are listed in (target, occurrence) order: a user reached three times is
three rows, one after the other, each with the campaign id of its occurrence. Each member's
rows are read along its own primary key (a LATERAL scan per member, limited to the page),
then merged, so a page costs the same whatever the size of the parent's ledger.

"Users" counters (stats_users_sent, _read, _clicked, _converted, and the rates built on
them) count distinct users of the family; message counters (stats_messages_sent, clicks,
conversions, the timeline) count every message and interaction (README: Triggered).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import asyncpg

if TYPE_CHECKING:  # ledger sums a family's counters with distinct_users
    from broadcaster.store.ledger import Conn


async def family(conn: Conn, app_id: int, camp: asyncpg.Record) -> list[str] | None:
    """[the campaign, its occurrences by number] for a triggered campaign with
    once_per_user false; None for every other campaign (its own listing applies)."""
    if camp["type"] != "triggered" or camp["once_per_user"] is not False or camp["parent_id"] is not None:
        return None
    rows = await conn.fetch(
        "SELECT id FROM campaigns WHERE app_id = $1 AND parent_id = $2 ORDER BY run_no", app_id, camp["id"])
    return [camp["id"], *(r[0] for r in rows)]


def _keyset(backwards: bool, col: str) -> str:
    """(col, member number) after/before ($3, $4), as an index range on col plus a filter."""
    op, eq = ("<", "<=") if backwards else (">", ">=")
    return f"AND {col} {eq} $3 AND ({col} {op} $3 OR f.n {op} $4)"


_MEMBERS = "unnest($2::text[]) WITH ORDINALITY AS f(cid, n)"


def widen(position: list[Any] | None, ids: list[str], backwards: bool) -> list[Any] | None:
    """A cursor issued before a repeating campaign listed its occurrences (its recipients
    and sent/read interactions were the parent's rows, one per target) holds [target_id]:
    it goes on strictly past that target, as it did then, now with every member's rows.
    The occurrences of the targets it had passed are not listed to it."""
    if position is None or len(position) != 1:
        return position
    # past every member of the target going forwards, before the first going backwards
    return [position[0], ids[0] if backwards else ids[-1]]


def _member_no(ids: list[str], position: list[Any] | None) -> int:
    """The position's member as its number in the family (0 before the first)."""
    if position is None:
        return 0
    return ids.index(position[1]) + 1 if position[1] in ids else 0


async def recipients(
    conn: Conn, app_id: int, ids: list[str], status: str | None, *, planned: bool,
    position: list[Any] | None, backwards: bool, limit: int,
) -> list[asyncpg.Record]:
    """As ledger.page over the family, position [target_id, campaign id], with each row's
    campaign_id; rows nearest the position first."""
    d = "DESC" if backwards else "ASC"
    args: list[Any] = [app_id, ids]
    keyset = ""
    if position is not None:
        keyset, args = _keyset(backwards, "a.target_id"), [*args, position[0], _member_no(ids, position)]
    if planned and status in (None, "pending"):
        inner = (
            "SELECT a.target_id, r.user_id, r.channel_cid, r.message_id, coalesce(r.status, 'pending') AS status,"
            " r.error, r.sent_at, r.read_at FROM campaign_audience a LEFT JOIN campaign_recipients r"
            " ON r.app_id = a.app_id AND r.campaign_id = a.campaign_id AND r.target_id = a.target_id"
            f" WHERE a.app_id = $1 AND a.campaign_id = f.cid AND {'r.target_id IS NULL' if status else 'true'}"
            f" {keyset} ORDER BY a.target_id {d} LIMIT {int(limit)}")
    elif status == "pending":
        return []
    else:
        args.append(status)
        inner = (
            "SELECT a.target_id, a.user_id, a.channel_cid, a.message_id, a.status, a.error, a.sent_at, a.read_at"
            f" FROM campaign_recipients a WHERE a.app_id = $1 AND a.campaign_id = f.cid"
            f" AND (${len(args)}::text IS NULL OR a.status = ${len(args)}) {keyset}"
            f" ORDER BY a.target_id {d} LIMIT {int(limit)}")
    return list(await conn.fetch(
        f"SELECT x.*, f.cid AS campaign_id FROM {_MEMBERS}, LATERAL ({inner}) x"
        f" ORDER BY x.target_id {d}, f.n {d} LIMIT {int(limit)}", *args))


async def ledger_interactions(
    conn: Conn, app_id: int, ids: list[str], kind: str, position: list[Any] | None, backwards: bool, limit: int,
) -> list[asyncpg.Record]:
    """sent / read interactions of the family, position [target_id, campaign id]."""
    d = "DESC" if backwards else "ASC"
    args: list[Any] = [app_id, ids]
    keyset = ""
    if position is not None:
        keyset, args = _keyset(backwards, "r.target_id"), [*args, position[0], _member_no(ids, position)]
    at, statuses = ("sent_at", "'sent', 'read'") if kind == "sent" else ("read_at", "'read'")
    return list(await conn.fetch(
        f"SELECT x.*, f.cid AS campaign_id FROM {_MEMBERS}, LATERAL ("
        f" SELECT r.target_id, r.user_id, r.channel_cid, r.message_id, r.variant_id, r.{at} AS at"
        f" FROM campaign_recipients r WHERE r.app_id = $1 AND r.campaign_id = f.cid AND r.status IN ({statuses})"
        f" {keyset} ORDER BY r.target_id {d} LIMIT {int(limit)}) x"
        f" ORDER BY x.target_id {d}, f.n {d} LIMIT {int(limit)}", *args))


async def distinct_users(conn: Conn, app_id: int, parent: str, kids: list[str]) -> dict[str, int]:
    """Users of the family not already counted by the parent's own counters (its ledger has
    one row per user, its first send): reached, read, clicked and converted only in
    occurrences. Proportional to the occurrences' rows, never the parent's whole ledger."""
    r = await conn.fetchrow(
        "SELECT"
        " (SELECT count(DISTINCT o.target_id) FROM campaign_recipients o WHERE o.app_id = $1"
        "   AND o.campaign_id = ANY($3::text[]) AND o.status IN ('sent', 'read') AND NOT EXISTS (SELECT 1"
        "   FROM campaign_recipients p WHERE p.app_id = $1 AND p.campaign_id = $2 AND p.target_id = o.target_id"
        "   AND p.status IN ('sent', 'read'))) AS users_sent,"
        " (SELECT count(DISTINCT o.target_id) FROM campaign_recipients o WHERE o.app_id = $1"
        "   AND o.campaign_id = ANY($3::text[]) AND o.status = 'read' AND NOT EXISTS (SELECT 1"
        "   FROM campaign_recipients p WHERE p.app_id = $1 AND p.campaign_id = $2 AND p.target_id = o.target_id"
        "   AND p.status = 'read')) AS read,"
        " (SELECT count(DISTINCT o.target_id) FROM campaign_clicks o WHERE o.app_id = $1"
        "   AND o.campaign_id = ANY($3::text[]) AND o.first AND o.target_id NOT IN (SELECT p.target_id"
        "   FROM campaign_clicks p WHERE p.app_id = $1 AND p.campaign_id = $2 AND p.first)) AS users_clicked,"
        " (SELECT count(DISTINCT o.user_id) FROM campaign_converters o WHERE o.app_id = $1"
        "   AND o.campaign_id = ANY($3::text[]) AND NOT EXISTS (SELECT 1 FROM campaign_converters p"
        "   WHERE p.app_id = $1 AND p.campaign_id = $2 AND p.user_id = o.user_id)) AS users_converted",
        app_id, parent, kids)
    assert r is not None
    return {k: int(r[k]) for k in ("users_sent", "read", "users_clicked", "users_converted")}

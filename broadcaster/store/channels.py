"""Channels, members, messages and read state (all SQL of the chat data except users)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from broadcaster.store import events, ledger
from broadcaster.store.users import user_cols, user_dict
from broadcaster.timefmt import fmt

Conn = asyncpg.Pool | asyncpg.Connection | PoolConnectionProxy
Tx = asyncpg.Connection | PoolConnectionProxy


def channel_dict(row: Mapping[str, Any] | asyncpg.Record) -> dict[str, Any]:
    out: dict[str, Any] = dict(row["custom"] or {})
    out.update({
        "id": row["id"], "type": row["type"], "cid": row["cid"],
        "created_by": user_dict(row, "cb_", row["created_by_id"]) if row["created_by_id"] else None,
        "member_count": row["member_count"],
        "created_at": fmt(row["created_at"]), "updated_at": fmt(row["updated_at"]),
        "frozen": False, "disabled": False,
    })
    if row["team"] is not None:
        out["team"] = row["team"]
    if row["deleted_at"] is not None:
        out["deleted_at"] = fmt(row["deleted_at"])
    return out


def message_dict(row: Mapping[str, Any] | asyncpg.Record) -> dict[str, Any]:
    out: dict[str, Any] = dict(row["custom"] or {})
    out.update({
        "id": row["id"], "text": row["text"], "type": row["type"], "cid": row["cid"],
        "user": user_dict(row, "u_", row["user_id"]), "attachments": row["attachments"],
        "created_at": fmt(row["created_at"]), "updated_at": fmt(row["updated_at"]),
    })
    if row["campaign_id"] is not None:
        out["campaign_id"] = row["campaign_id"]
    return out


def member_dict(row: Mapping[str, Any] | asyncpg.Record) -> dict[str, Any]:
    out: dict[str, Any] = dict(row["custom"] or {})
    out.update({
        "user_id": row["user_id"], "user": user_dict(row, "u_", row["user_id"]),
        "channel_role": row["channel_role"],
        "created_at": fmt(row["created_at"]), "updated_at": fmt(row["updated_at"] or row["created_at"]),
    })
    for opt in ("archived_at", "pinned_at"):
        if row[opt] is not None:
            out[opt] = fmt(row[opt])
    return out


def read_dict(row: Mapping[str, Any] | asyncpg.Record) -> dict[str, Any]:
    return {
        "user": user_dict(row, "u_", row["user_id"]), "last_read": fmt(row["last_read"]),
        "unread_messages": row["unread_messages"],
    }


_CHANNEL_SELECT = f"""
SELECT channels.*, {user_cols("cb", "cb_")}
FROM channels
LEFT JOIN users cb ON cb.app_id = channels.app_id AND cb.id = channels.created_by_id
"""


async def get(conn: Conn, app_id: int, cid: str) -> asyncpg.Record | None:
    """A live (not deleted) channel with its creator joined."""
    return await conn.fetchrow(
        _CHANNEL_SELECT + " WHERE channels.app_id = $1 AND channels.cid = $2 AND channels.deleted_at IS NULL",
        app_id, cid,
    )


async def create(
    conn: Tx, app_id: int, ctype: str, cid_id: str, created_by_id: str, team: str | None,
    custom: dict[str, Any], member_ids: Sequence[str], *, pair: tuple[str, str] | None = None,
) -> bool:
    """Create the channel with its members unless it exists; a soft-deleted one is revived
    with the new data. Returns whether this call created (or revived) it. pair: a new 1:1
    distinct channel, not created (False) when that pair's channel exists (store/distinct.py)."""
    cid = f"{ctype}:{cid_id}"
    async with conn.transaction():
        if pair is not None:
            created = await conn.fetchval(
                "INSERT INTO channels (app_id, cid, type, id, team, created_by_id, custom, pair_lo, pair_hi)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING RETURNING TRUE",
                app_id, cid, ctype, cid_id, team, created_by_id, custom, *pair,
            )
        else:
            created = await conn.fetchval(
                """
                INSERT INTO channels (app_id, cid, type, id, team, created_by_id, custom)
                VALUES ($1, $2, $3, $4, $5, $6, $7)
                ON CONFLICT (app_id, cid) DO UPDATE SET
                    team = EXCLUDED.team, created_by_id = EXCLUDED.created_by_id, custom = EXCLUDED.custom,
                    deleted_at = NULL, created_at = now(), updated_at = now()
                WHERE channels.deleted_at IS NOT NULL
                RETURNING TRUE
                """,
                app_id, cid, ctype, cid_id, team, created_by_id, custom,
            )
        if not created:
            return False
        await conn.execute(
            """
            INSERT INTO members (app_id, cid, user_id)
            SELECT $1, $2, u FROM unnest($3::text[]) AS u
            ON CONFLICT DO NOTHING
            """,
            app_id, cid, list(member_ids),
        )
        await conn.execute(
            "UPDATE channels SET member_count = (SELECT count(*) FROM members m"
            " WHERE m.app_id = $1 AND m.cid = $2) WHERE app_id = $1 AND cid = $2",
            app_id, cid,
        )
        # channel.created for triggered campaigns, in the transaction that creates it
        await conn.execute(_CHANNEL_EVENT, app_id, cid, ctype, cid_id, team, created_by_id, custom, list(member_ids))
    return True


async def members_of(conn: Conn, app_id: int, cids: Sequence[str], limit: int) -> list[asyncpg.Record]:
    """Up to `limit` members per channel, oldest first."""
    return await conn.fetch(
        f"""
        SELECT m.*, {user_cols("u", "u_")}
        FROM unnest($2::text[]) AS c(cid)
        CROSS JOIN LATERAL (
            SELECT * FROM members WHERE app_id = $1 AND cid = c.cid ORDER BY created_at, user_id LIMIT $3
        ) m
        LEFT JOIN users u ON u.app_id = m.app_id AND u.id = m.user_id
        ORDER BY m.cid, m.created_at, m.user_id
        """,
        app_id, list(cids), limit,
    )


async def messages_of(conn: Conn, app_id: int, cids: Sequence[str], limit: int) -> list[asyncpg.Record]:
    """The newest `limit` messages per channel, returned oldest first (newest last)."""
    if limit == 0:
        return []
    return await conn.fetch(
        f"""
        SELECT m.*, {user_cols("u", "u_")}
        FROM unnest($2::text[]) AS c(cid)
        CROSS JOIN LATERAL (
            SELECT * FROM messages WHERE app_id = $1 AND cid = c.cid ORDER BY created_at DESC, id DESC LIMIT $3
        ) m
        LEFT JOIN users u ON u.app_id = m.app_id AND u.id = m.user_id
        ORDER BY m.cid, m.created_at, m.id
        """,
        app_id, list(cids), limit,
    )


async def reads_of(conn: Conn, app_id: int, cids: Sequence[str], limit: int) -> list[asyncpg.Record]:
    """Read state per channel with the count of others' messages after last_read."""
    return await conn.fetch(
        f"""
        SELECT r.*, {user_cols("u", "u_")},
               (SELECT count(*) FROM messages x WHERE x.app_id = r.app_id AND x.cid = r.cid
                  AND x.created_at > r.last_read AND x.user_id <> r.user_id) AS unread_messages
        FROM unnest($2::text[]) AS c(cid)
        CROSS JOIN LATERAL (
            SELECT * FROM channel_reads WHERE app_id = $1 AND cid = c.cid ORDER BY last_read DESC LIMIT $3
        ) r
        LEFT JOIN users u ON u.app_id = r.app_id AND u.id = r.user_id
        ORDER BY r.cid, r.user_id
        """,
        app_id, list(cids), limit,
    )


_MESSAGE_EVENT = events.event_sql(
    ("message.new",), "m", "'message.new'", "w.user_id",
    "jsonb_build_object('cid', w.cid, 'channel_type', split_part(w.cid, ':', 1),"
    " 'channel_id', substr(w.cid, strpos(w.cid, ':') + 1),"
    " 'message', jsonb_build_object('id', w.id, 'text', w.text, 'type', w.type, 'custom', w.custom))")
_CHANNEL_EVENT = events.event_sql(
    ("channel.created",), "(SELECT $2::text AS cid, $3::text AS type, $4::text AS id, $5::text AS team,"
    " $6::text AS created_by_id, $7::jsonb AS custom, $8::text[] AS members)", "'channel.created'", "w.created_by_id",
    "jsonb_build_object('cid', w.cid, 'channel_type', w.type, 'channel_id', w.id, 'team', w.team,"
    " 'custom', w.custom, 'members', to_jsonb(w.members))")


async def insert_message(
    conn: Conn, app_id: int, cid: str, msg_id: str, user_id: str, mtype: str, text: str,
    attachments: list[Any], custom: dict[str, Any],
) -> asyncpg.Record | None:
    """The new message with its user, or None when the id is taken."""
    return await conn.fetchrow(
        f"""
        WITH m AS (
            INSERT INTO messages (app_id, id, cid, user_id, type, text, attachments, custom)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
            ON CONFLICT (app_id, id) DO NOTHING
            RETURNING *
        ), shown AS (  -- a channel hidden by a member shows again when someone else writes
            UPDATE members SET hidden = false, updated_at = now()
            WHERE app_id = $1 AND cid = $3 AND hidden AND user_id <> $4 AND EXISTS (SELECT 1 FROM m)
        ), ev AS (  -- triggered campaigns (campaign messages are written by fanwrite, never here)
            {_MESSAGE_EVENT}
        )
        SELECT m.*, {user_cols("u", "u_")} FROM m LEFT JOIN users u ON u.app_id = m.app_id AND u.id = m.user_id
        """,
        app_id, msg_id, cid, user_id, mtype, text, attachments, custom,
    )


async def mark_read(conn: Tx, app_id: int, cid: str, user_id: str) -> datetime:
    """Set the user's last_read in the channel to now; returns the new last_read."""
    async with conn.transaction():
        last_read: datetime = await conn.fetchval(
            """
            INSERT INTO channel_reads (app_id, cid, user_id, last_read) VALUES ($1, $2, $3, now())
            ON CONFLICT (app_id, cid, user_id) DO UPDATE SET last_read = EXCLUDED.last_read
            RETURNING last_read
            """,
            app_id, cid, user_id,
        )
        # Campaign messages of this channel to this user become `read` in the same transaction.
        await ledger.on_read(conn, app_id, cid, user_id)
    return last_read


async def query(
    conn: Conn, app_id: int, where: str, params: list[Any], order: list[tuple[str, int]],
    limit: int, offset: int,
) -> list[asyncpg.Record]:
    """`where` comes from filters.compile_filter (CHANNEL_SCHEMA) with params after $1."""
    order_sql = ", ".join(f"channels.{c} {'ASC' if d == 1 else 'DESC'} NULLS LAST" for c, d in order)
    n = len(params) + 2
    # Filter in a subquery over `channels` alone: the filter's column names are unqualified.
    sql = f"""
        SELECT channels.*, {user_cols("cb", "cb_")}
        FROM (
            SELECT * FROM channels WHERE app_id = $1 AND deleted_at IS NULL AND {where}
            ORDER BY {order_sql} LIMIT ${n} OFFSET ${n + 1}
        ) channels
        LEFT JOIN users cb ON cb.app_id = channels.app_id AND cb.id = channels.created_by_id
        ORDER BY {order_sql}
    """
    return await conn.fetch(sql, app_id, *params, limit, offset)


async def delete(conn: Tx, app_id: int, cids: Sequence[str], hard: bool) -> set[str]:
    """Soft: mark deleted. Hard: remove the channels and their members, messages, reads.
    Returns the cids that existed."""
    async with conn.transaction():
        if not hard:
            rows = await conn.fetch(
                "UPDATE channels SET deleted_at = now(), updated_at = now()"
                " WHERE app_id = $1 AND cid = ANY($2::text[]) AND deleted_at IS NULL RETURNING cid",
                app_id, list(cids),
            )
            return {r["cid"] for r in rows}
        rows = await conn.fetch(
            "DELETE FROM channels WHERE app_id = $1 AND cid = ANY($2::text[]) RETURNING cid", app_id, list(cids)
        )
        for table in ("members", "messages", "channel_reads"):
            await conn.execute(f"DELETE FROM {table} WHERE app_id = $1 AND cid = ANY($2::text[])", app_id, list(cids))
        return {r["cid"] for r in rows}


# ---- per-member state: hidden, archived, pinned, custom ----

MEMBER_SELECT = f"""
SELECT m.*, {user_cols("u", "u_")} FROM members m
LEFT JOIN users u ON u.app_id = m.app_id AND u.id = m.user_id
WHERE m.app_id = $1 AND m.cid = $2 AND m.user_id = $3
"""


async def set_hidden(conn: Conn, app_id: int, cid: str, user_id: str, hidden: bool) -> bool:
    """Hide or show the channel for one member; False when the user is not a member."""
    status = await conn.execute(
        "UPDATE members SET hidden = $4, updated_at = now() WHERE app_id = $1 AND cid = $2 AND user_id = $3",
        app_id, cid, user_id, hidden,
    )
    return status != "UPDATE 0"


async def update_member(
    conn: Conn, app_id: int, cid: str, user_id: str, *, archived: bool | None, pinned: bool | None,
    custom_set: dict[str, Any], custom_unset: list[str],
) -> asyncpg.Record | None:
    """The member partial update; None when the user is not a member. archived/pinned: True
    stamps now (kept when already set), False clears, None leaves it."""
    found = await conn.fetchval(
        """
        UPDATE members SET
            archived_at = CASE WHEN $4::boolean IS NULL THEN archived_at
                               WHEN $4 THEN COALESCE(archived_at, now()) END,
            pinned_at = CASE WHEN $5::boolean IS NULL THEN pinned_at
                             WHEN $5 THEN COALESCE(pinned_at, now()) END,
            custom = (custom - $7::text[]) || $6::jsonb,
            updated_at = now()
        WHERE app_id = $1 AND cid = $2 AND user_id = $3 RETURNING true
        """,
        app_id, cid, user_id, archived, pinned, custom_set, custom_unset,
    )
    return await conn.fetchrow(MEMBER_SELECT, app_id, cid, user_id) if found else None


def member_state_sql(user_param: str, state: str, wanted: bool) -> str:
    """A QueryChannels condition on the channels table: `user_param`'s member row is (or is
    not) hidden / archived / pinned. Not a member counts as not hidden, archived or pinned."""
    column = {"hidden": "m.hidden", "archived": "m.archived_at IS NOT NULL", "pinned": "m.pinned_at IS NOT NULL"}[state]
    exists = (f"EXISTS (SELECT 1 FROM members m WHERE m.app_id = channels.app_id AND m.cid = channels.cid"
              f" AND m.user_id = {user_param} AND {column})")
    return exists if wanted else f"NOT {exists}"


# A member update over a batch's channels, as one primary-key probe per channel: the
# OFFSET 0 fence keeps the lateral lookup on (app_id, cid) alone, so the planner cannot walk
# the sender's member rows instead (it is in every channel of its campaigns: that plan took
# 54 s for one 2,000-channel batch of a 50,000-recipient campaign, this one ~30 ms), and
# hash/merge joins and sequential scans are priced out for the statement.
_EACH_MEMBER = (
    " FROM (SELECT x.ctid AS t FROM unnest($2::text[]) AS c(cid) CROSS JOIN LATERAL"
    " (SELECT ctid, user_id, hidden, archived_at FROM members WHERE app_id = $1 AND cid = c.cid OFFSET 0) x"
    " WHERE {}) s WHERE m.ctid = s.t"
)
_NO_SCANS = ("enable_hashjoin", "enable_mergejoin", "enable_seqscan", "enable_bitmapscan")


async def each_member(conn: Tx, set_sql: str, where: str, *args: Any, explain: bool = False) -> list[str]:
    """UPDATE members m SET <set_sql> for the members of channels $2 matching <where> (on x);
    the planner settings are restored before returning (the caller's transaction goes on).
    explain: only the plan's lines, nothing updated."""
    prev = await conn.fetchrow(
        "SELECT " + ", ".join(f"current_setting('{n}') AS {n}, set_config('{n}', 'off', true) AS x_{n}"
                              for n in _NO_SCANS)
    )
    assert prev is not None
    sql = f"UPDATE members m SET {set_sql}, updated_at = now()" + _EACH_MEMBER.format(where)
    try:
        if explain:
            return [r[0] for r in await conn.fetch("EXPLAIN " + sql, *args)]
        await conn.execute(sql, *args)
        return []
    finally:
        await conn.execute("SELECT " + ", ".join(f"set_config('{n}', ${i + 1}, true)" for i, n in enumerate(_NO_SCANS)),
                           *(prev[n] for n in _NO_SCANS))


async def apply_campaign_visibility(
    conn: Tx, app_id: int, campaign_id: str, sender_id: str, visibility: str | None, show: bool,
    after_id: str | None, upto_id: str,
) -> None:
    """A campaign batch's sender_visibility and show_channels, set-based in the batch's
    transaction: over the channels its ledger rows in (after_id, upto_id] were sent into, hide
    or archive them for the sender, and (show_channels) un-hide them for everyone else."""
    # '' sorts before every id: plain bounds keep this one primary-key range of the ledger.
    cids = [r[0] for r in await conn.fetch(
        "SELECT DISTINCT channel_cid FROM campaign_recipients WHERE app_id = $1 AND campaign_id = $2"
        " AND target_id > $3 AND target_id <= $4 AND status = 'sent' AND channel_cid IS NOT NULL",
        app_id, campaign_id, after_id or "", upto_id,
    )]
    if not cids:
        return
    if visibility == "hidden":
        await each_member(conn, "hidden = true", "x.user_id = $3 AND NOT x.hidden", app_id, cids, sender_id)
    elif visibility == "archived":
        await each_member(conn, "archived_at = now()", "x.user_id = $3 AND x.archived_at IS NULL",
                           app_id, cids, sender_id)
    if show:
        await each_member(conn, "hidden = false", "x.user_id <> $3 AND x.hidden", app_id, cids, sender_id)

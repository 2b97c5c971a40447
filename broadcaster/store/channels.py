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

"""Segments: the audience definitions (their explicit targets live in store/targets.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from broadcaster.errors import bad_request, conflict, not_found
from broadcaster.timefmt import fmt
from broadcaster.validate import ID_RE

Conn = asyncpg.Pool | asyncpg.Connection | PoolConnectionProxy
Tx = asyncpg.Connection | PoolConnectionProxy  # something that can open a transaction

COLUMNS = (
    "app_id, id, key, type, name, description, filter, all_users, all_sender_channels, size,"
    " size_version, created_at, updated_at"
)


@dataclass(frozen=True)
class SegmentRow:
    app_id: int
    id: str
    key: int
    type: str
    name: str
    description: str
    filter: dict[str, Any] | None
    all_users: bool
    all_sender_channels: bool
    size: int | None
    size_version: int
    created_at: datetime
    updated_at: datetime

    @property
    def explicit(self) -> bool:
        return self.filter is None and not self.all_users and not self.all_sender_channels

    @property
    def kind(self) -> str:
        if self.filter is not None:
            return "filter"
        if self.all_users:
            return "all_users"
        if self.all_sender_channels:
            return "all_sender_channels"
        return "explicit"


def wire(seg: SegmentRow) -> dict[str, Any]:
    """The hosted API's SegmentResponse."""
    return {
        "id": seg.id, "type": seg.type, "name": seg.name, "description": seg.description,
        "filter": seg.filter, "all_users": seg.all_users,
        "all_sender_channels": seg.all_sender_channels, "size": seg.size,
        "created_at": fmt(seg.created_at), "updated_at": fmt(seg.updated_at),
        # A deleted segment is gone (its targets are purged in the background): never set.
        "deleted_at": None,
    }


def row(r: asyncpg.Record) -> SegmentRow:
    return SegmentRow(**dict(r))


async def get(conn: Conn, app_id: int, segment_id: str, *, for_update: bool = False) -> SegmentRow:
    if not ID_RE.match(segment_id):  # never stored; and a NUL byte would be a database error
        raise not_found(f"segment {segment_id[:300]!r}")
    sql = f"SELECT {COLUMNS} FROM segments WHERE app_id = $1 AND id = $2"
    if for_update:
        sql += " FOR NO KEY UPDATE"
    r = await conn.fetchrow(sql, app_id, segment_id)
    if r is None:
        raise not_found(f"segment {segment_id!r}")
    return row(r)


async def get_many(conn: Conn, app_id: int, segment_ids: list[str]) -> list[SegmentRow]:
    rows = await conn.fetch(
        f"SELECT {COLUMNS} FROM segments WHERE app_id = $1 AND id = ANY($2::text[]) ORDER BY id",
        app_id, segment_ids,
    )
    return [row(r) for r in rows]


async def create(
    conn: Conn, app_id: int, segment_id: str, type_: str, name: str, description: str,
    filter_: dict[str, Any] | None, all_users: bool, all_sender_channels: bool,
) -> SegmentRow:
    # Explicit lists start exact at 0; all_sender_channels stays null (never computed).
    size = 0 if filter_ is None and not all_users and not all_sender_channels else None
    r = await conn.fetchrow(
        "INSERT INTO segments (app_id, id, type, name, description, filter, all_users,"
        " all_sender_channels, size) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        f" ON CONFLICT (app_id, id) DO NOTHING RETURNING {COLUMNS}",
        app_id, segment_id, type_, name, description, filter_, all_users, all_sender_channels, size,
    )
    if r is None:
        raise conflict(f"segment {segment_id!r} already exists")
    return row(r)


async def update(
    conn: Conn, app_id: int, segment_id: str, *, name: str | None, description: str | None,
    filter_: dict[str, Any] | None,
) -> SegmentRow:
    """A filter change resets size to unknown and bumps size_version (the job recomputes it)."""
    r = await conn.fetchrow(
        "UPDATE segments SET name = coalesce($3, name), description = coalesce($4, description),"
        " filter = coalesce($5, filter),"
        " size = CASE WHEN $5::jsonb IS NULL OR $5::jsonb = filter THEN size END,"
        " size_version = size_version"
        "   + CASE WHEN $5::jsonb IS NULL OR $5::jsonb = filter THEN 0 ELSE 1 END,"
        " updated_at = now()"
        f" WHERE app_id = $1 AND id = $2 RETURNING {COLUMNS}",
        app_id, segment_id, name, description, filter_,
    )
    if r is None:
        raise not_found(f"segment {segment_id!r}")
    return row(r)


async def active_campaign_using(conn: Conn, app_id: int, segment_id: str) -> tuple[str, str] | None:
    """(campaign id, status) of a scheduled, in-progress or paused campaign using the segment, if any."""
    if await conn.fetchval("SELECT to_regclass('campaigns')") is None:
        return None  # the campaigns table is not migrated in (yet): nothing can use it
    r = await conn.fetchrow(
        "SELECT id, status FROM campaigns WHERE app_id = $1 AND $2 = ANY(segment_ids)"
        " AND status IN ('scheduled', 'in_progress', 'paused') ORDER BY id LIMIT 1",
        app_id, segment_id,
    )
    return (r["id"], r["status"]) if r else None


async def delete(conn: Tx, app_id: int, segment_id: str) -> int:
    """Delete the segment row (after checking no live campaign uses it); returns its key so
    the caller can purge the targets in the background."""
    async with conn.transaction():
        seg = await get(conn, app_id, segment_id, for_update=True)
        used = await active_campaign_using(conn, app_id, segment_id)
        if used is not None:
            raise bad_request(
                f"segment {segment_id!r} cannot be deleted: campaign {used[0]!r} using it is"
                f" {used[1]} (stop it first)"
            )
        await conn.execute("DELETE FROM segments WHERE app_id = $1 AND id = $2", app_id, segment_id)
        return seg.key


async def query(
    conn: Conn, app_id: int, where: str, params: list[Any], order: list[tuple[str, int]], limit: int,
) -> list[SegmentRow]:
    """`where` is compiled filter/keyset SQL over segment columns with params from $2 on."""
    order_sql = ", ".join(f"{col} {'ASC' if d == 1 else 'DESC'}" for col, d in order)
    rows = await conn.fetch(
        f"SELECT {COLUMNS} FROM segments WHERE app_id = $1 AND ({where})"
        f" ORDER BY {order_sql} LIMIT {int(limit)}",
        app_id, *params,
    )
    return [row(r) for r in rows]


async def by_key(conn: Conn, key: int) -> SegmentRow | None:
    r = await conn.fetchrow(f"SELECT {COLUMNS} FROM segments WHERE key = $1", key)
    return row(r) if r else None


async def set_size(conn: Conn, key: int, version: int, size: int) -> bool:
    """Write a computed size unless the filter changed meanwhile (version moved on)."""
    status = await conn.execute(
        "UPDATE segments SET size = $3 WHERE key = $1 AND size_version = $2", key, version, size
    )
    return status.endswith(" 1")


async def unsized(conn: Conn, limit: int = 100) -> list[SegmentRow]:
    """Filter/all_users segments whose size is not known (a size job was lost or is due)."""
    rows = await conn.fetch(
        f"SELECT {COLUMNS} FROM segments WHERE size IS NULL AND (filter IS NOT NULL OR all_users)"
        " ORDER BY key LIMIT $1",
        limit,
    )
    return [row(r) for r in rows]


def keyset_where(
    cols: list[str], directions: list[int], values: list[Any], params: Any, backwards: bool
) -> str:
    """Rows strictly after (or, backwards, before) a position in a mixed-direction order:
    OR over i of (c0 = v0 AND ... AND ci >|< vi)."""
    ors = []
    for i, col in enumerate(cols):
        ands = [f"{cols[j]} = {params.add(values[j])}" for j in range(i)]
        op = ">" if (directions[i] == 1) != backwards else "<"
        ands.append(f"{col} {op} {params.add(values[i])}")
        ors.append("(" + " AND ".join(ands) + ")")
    return "(" + " OR ".join(ors) + ")"


async def count_matching(conn: Conn, table: str, app_id: int, where: str, params: list[Any]) -> int:
    """Count live users or channels matching a compiled filter (the size job)."""
    assert table in ("users", "channels")
    n = await conn.fetchval(
        f"SELECT count(*) FROM {table} WHERE app_id = $1 AND deleted_at IS NULL AND ({where})",
        app_id, *params,
    )
    return int(n or 0)

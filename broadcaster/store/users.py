"""Users: set-based upsert, partial update, filtered queries, soft and hard delete."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson
from asyncpg.pool import PoolConnectionProxy

from broadcaster.store import events
from broadcaster.timefmt import fmt

Conn = asyncpg.Pool | asyncpg.Connection | PoolConnectionProxy
Tx = asyncpg.Connection | PoolConnectionProxy

COLUMNS = ("id", "name", "role", "teams", "language", "custom", "created_at", "updated_at", "deleted_at")


def user_cols(alias: str, prefix: str) -> str:
    """The user columns of `alias` renamed with `prefix`, for joins that embed a user."""
    return ", ".join(f"{alias}.{c} AS {prefix}{c}" for c in COLUMNS)


def user_dict(row: Mapping[str, Any] | asyncpg.Record, prefix: str = "", fallback_id: str | None = None) -> dict[str, Any]:
    """The wire shape of a user: built-in fields, then custom fields at the top level."""
    uid = row[f"{prefix}id"]
    if uid is None:  # a joined user that was hard-deleted
        return {"id": fallback_id}
    out: dict[str, Any] = dict(row[f"{prefix}custom"] or {})
    out.update({
        "id": uid, "role": row[f"{prefix}role"], "teams": list(row[f"{prefix}teams"] or []),
        "created_at": fmt(row[f"{prefix}created_at"]), "updated_at": fmt(row[f"{prefix}updated_at"]),
    })
    for opt in ("name", "language"):
        if row[f"{prefix}{opt}"] is not None:
            out[opt] = row[f"{prefix}{opt}"]
    if row[f"{prefix}deleted_at"] is not None:
        out["deleted_at"] = fmt(row[f"{prefix}deleted_at"])
    return out


@dataclass(frozen=True)
class UserIn:
    id: str
    name: str | None
    role: str | None  # None keeps the stored role (new users get "user")
    teams: list[str]
    language: str | None
    custom: dict[str, Any]


# The upsert, and (only while a triggered campaign listens to user events) one user.created
# or user.updated event per row in the same statement.
_UPSERT = """
WITH src AS (
    SELECT * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::jsonb[])
        AS s(id, name, role, teams, language, custom)
), up AS (
INSERT INTO users AS u (app_id, id, name, role, teams, language, custom)
SELECT $1, s.id, s.name,
       COALESCE(s.role, (SELECT x.role FROM users x WHERE x.app_id = $1 AND x.id = s.id), 'user'),
       ARRAY(SELECT jsonb_array_elements_text(s.teams::jsonb)), s.language, s.custom
FROM src s
ON CONFLICT (app_id, id) DO UPDATE SET
    name = EXCLUDED.name, role = EXCLUDED.role, teams = EXCLUDED.teams,
    language = EXCLUDED.language, custom = EXCLUDED.custom, updated_at = now(), deleted_at = NULL
RETURNING u.*, (u.xmax = 0) AS bc_inserted
), ev AS (
""" + events.user_events_sql("up", "'{}'::jsonb", "CASE WHEN w.bc_inserted THEN 'user.created' ELSE 'user.updated' END") + """
)
SELECT * FROM up
"""


async def upsert(conn: Conn, app_id: int, users: Sequence[UserIn]) -> list[asyncpg.Record]:
    """One statement for the whole batch: all rows are written or none.

    Teams go in as JSON text: asyncpg would read a list of lists as a 2-D array."""
    return await conn.fetch(
        _UPSERT, app_id, [u.id for u in users], [u.name for u in users], [u.role for u in users],
        [orjson.dumps(u.teams).decode() for u in users], [u.language for u in users], [u.custom for u in users],
    )


@dataclass(frozen=True)
class Patch:
    id: str
    set_fields: dict[str, Any]  # built-in fields among name/role/teams/language
    set_custom: dict[str, Any]
    unset_fields: list[str]
    unset_custom: list[str]


_PATCH = """
WITH up AS (
UPDATE users SET
    name = CASE WHEN $3 THEN $4::text WHEN $5 THEN NULL ELSE name END,
    role = CASE WHEN $6 THEN $7::text WHEN $8 THEN 'user' ELSE role END,
    teams = CASE WHEN $9 THEN $10::text[] WHEN $11 THEN '{}' ELSE teams END,
    language = CASE WHEN $12 THEN $13::text WHEN $14 THEN NULL ELSE language END,
    custom = (custom - $15::text[]) || $16::jsonb,
    updated_at = now()
WHERE app_id = $1 AND id = $2 AND deleted_at IS NULL
RETURNING *
), ev AS (
""" + events.user_events_sql("up", "$17::jsonb", "'user.updated'") + """
)
SELECT * FROM up
"""


class MissingUser(Exception):
    def __init__(self, user_id: str) -> None:
        super().__init__(user_id)
        self.user_id = user_id


async def patch(conn: Tx, app_id: int, patches: Sequence[Patch]) -> list[asyncpg.Record]:
    """Apply all patches in one transaction; MissingUser (nothing written) names an absent user."""
    out: list[asyncpg.Record] = []
    async with conn.transaction():
        for p in patches:
            args: list[Any] = [app_id, p.id]
            for f in ("name", "role", "teams", "language"):
                args += [f in p.set_fields, p.set_fields.get(f), f in p.unset_fields]
            args += [p.unset_custom, p.set_custom,
                     {"set": {**p.set_fields, **p.set_custom}, "unset": [*p.unset_fields, *p.unset_custom]}]
            row = await conn.fetchrow(_PATCH, *args)
            if row is None:
                raise MissingUser(p.id)
            out.append(row)
    return out


async def query(
    conn: Conn, app_id: int, where: str, params: list[Any],
    order: list[tuple[str, int]], limit: int, offset: int, include_deleted: bool,
) -> list[asyncpg.Record]:
    """`where` comes from filters.compile_filter with params numbered after $1 (app_id)."""
    order_sql = ", ".join(f"{c} {'ASC' if d == 1 else 'DESC'} NULLS LAST" for c, d in order)
    deleted = "" if include_deleted else " AND deleted_at IS NULL"
    n = len(params) + 2
    sql = (
        f"SELECT * FROM users WHERE app_id = $1{deleted} AND {where} "
        f"ORDER BY {order_sql} LIMIT ${n} OFFSET ${n + 1}"
    )
    return await conn.fetch(sql, app_id, *params, limit, offset)


async def get(conn: Conn, app_id: int, user_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM users WHERE app_id = $1 AND id = $2", app_id, user_id)


async def get_many(conn: Conn, app_id: int, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The wire shape of each of `ids` that is a user (soft-deleted ones carry deleted_at)."""
    rows = await conn.fetch(
        f"SELECT {', '.join(COLUMNS)} FROM users WHERE app_id = $1 AND id = ANY($2::text[])", app_id, list(ids),
    )
    return {r["id"]: user_dict(r) for r in rows}


async def existing_ids(conn: Conn, app_id: int, ids: Sequence[str]) -> set[str]:
    """Which of `ids` are users that exist and are not deleted."""
    rows = await conn.fetch(
        "SELECT id FROM users WHERE app_id = $1 AND id = ANY($2::text[]) AND deleted_at IS NULL",
        app_id, list(ids),
    )
    return {r["id"] for r in rows}


async def soft_delete(conn: Conn, app_id: int, ids: Sequence[str]) -> list[asyncpg.Record]:
    """Mark users deleted (already-deleted ones keep their first deleted_at)."""
    return await conn.fetch(
        "UPDATE users SET deleted_at = COALESCE(deleted_at, now()), updated_at = now()"
        " WHERE app_id = $1 AND id = ANY($2::text[]) RETURNING *",
        app_id, list(ids),
    )


async def hard_delete(conn: Conn, app_id: int, ids: Sequence[str]) -> list[asyncpg.Record]:
    """Remove the rows; channels, memberships and messages stay (messages show the bare id)."""
    return await conn.fetch(
        "DELETE FROM users WHERE app_id = $1 AND id = ANY($2::text[]) RETURNING *", app_id, list(ids)
    )


async def opt_out(conn: Conn, app_id: int, user_id: str) -> bool:
    """campaigns_opt_out: true on a live user (idempotent); False when there is no such user."""
    return bool(await conn.fetchval(
        "UPDATE users SET custom = custom || '{\"campaigns_opt_out\": true}'::jsonb,"
        " updated_at = CASE WHEN custom @> '{\"campaigns_opt_out\": true}' THEN updated_at ELSE now() END"
        " WHERE app_id = $1 AND id = $2 AND deleted_at IS NULL RETURNING 1", app_id, user_id))

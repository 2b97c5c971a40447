"""Dashboard sessions: one row per sign-in, keyed by the hash of the cookie value."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True)
class SessionRow:
    app_id: int
    csrf: str


async def create(pool: asyncpg.Pool, sid_hash: str, app_id: int, csrf: str, idle_s: float) -> None:
    async with pool.acquire() as conn, conn.transaction():
        # Expired rows of anyone go on each sign-in: no sweeper job, the table stays small.
        await conn.execute("DELETE FROM dashboard_sessions WHERE expires_at < now()")
        await conn.execute(
            "INSERT INTO dashboard_sessions (id, app_id, csrf, expires_at)"
            " VALUES ($1, $2, $3, now() + make_interval(secs => $4))",
            sid_hash, app_id, csrf, idle_s,
        )


async def touch(pool: asyncpg.Pool, sid_hash: str, idle_s: float, max_age_s: float) -> SessionRow | None:
    """The live session, its idle expiry pushed forward (capped by its absolute lifetime);
    None when there is none or it has expired."""
    r = await pool.fetchrow(
        "UPDATE dashboard_sessions SET expires_at = least(now() + make_interval(secs => $2),"
        " created_at + make_interval(secs => $3))"
        " WHERE id = $1 AND expires_at > now() RETURNING app_id, csrf",
        sid_hash, idle_s, max_age_s,
    )
    return SessionRow(r["app_id"], r["csrf"]) if r else None


async def delete(pool: asyncpg.Pool, sid_hash: str) -> bool:
    return (await pool.execute("DELETE FROM dashboard_sessions WHERE id = $1", sid_hash)) != "DELETE 0"

"""Apps: tenant rows holding api_key, secret and settings. Secrets are stored sealed
(secretbox) when BROADCASTER_SECRET_KEY is set; rows always carry them revealed."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from broadcaster import secretbox

_COLS = "id, name, api_key, api_secret, settings, previous_secret, previous_secret_expires_at"


@dataclass(frozen=True)
class AppRow:
    id: int
    name: str
    api_key: str
    api_secret: str
    settings: dict[str, Any]
    previous_secret: str | None = None
    previous_secret_expires_at: datetime | None = None

    def secrets(self, now: datetime | None = None) -> list[str]:
        """The secrets a token may be signed with: the current one, and the previous one
        until its grace period ends."""
        out = [self.api_secret]
        exp = self.previous_secret_expires_at
        if self.previous_secret and exp is not None and exp > (now or datetime.now(UTC)):
            out.append(self.previous_secret)
        return out


def _row(r: asyncpg.Record) -> AppRow:
    prev = r["previous_secret"]
    return AppRow(r["id"], r["name"], r["api_key"], secretbox.reveal(r["api_secret"]), r["settings"] or {},
                  secretbox.reveal(prev) if prev else None, r["previous_secret_expires_at"])


async def by_key(conn: asyncpg.Pool | asyncpg.Connection, api_key: str) -> AppRow | None:
    r = await conn.fetchrow(
        f"SELECT {_COLS} FROM apps WHERE api_key = $1", api_key
    )
    return _row(r) if r else None


async def by_id(conn: asyncpg.Pool | asyncpg.Connection, app_id: int) -> AppRow | None:
    r = await conn.fetchrow(
        f"SELECT {_COLS} FROM apps WHERE id = $1", app_id
    )
    return _row(r) if r else None


async def by_name(conn: asyncpg.Pool | asyncpg.Connection, name: str) -> AppRow | None:
    r = await conn.fetchrow(
        f"SELECT {_COLS} FROM apps WHERE name = $1 ORDER BY id LIMIT 1",
        name,
    )
    return _row(r) if r else None


async def create(conn: asyncpg.Pool | asyncpg.Connection, name: str) -> AppRow:
    r = await conn.fetchrow(
        f"INSERT INTO apps (name, api_key, api_secret) VALUES ($1, $2, $3) RETURNING {_COLS}",
        name, secrets.token_hex(8), secretbox.seal(secrets.token_urlsafe(48)),
    )
    assert r is not None
    return _row(r)


async def settings_for_update(conn: asyncpg.Connection | PoolConnectionProxy, app_id: int) -> dict[str, Any]:
    """The settings, locked until the transaction ends (to compare a change with them)."""
    r = await conn.fetchval("SELECT settings FROM apps WHERE id = $1 FOR UPDATE", app_id)
    return dict(r or {})


async def update_settings(
    conn: asyncpg.Pool | asyncpg.Connection | PoolConnectionProxy, app_id: int, patch: dict[str, Any]
) -> dict[str, Any]:
    """Merge top-level keys into the settings object atomically (concurrent PATCHes compose)."""
    r = await conn.fetchval(
        "UPDATE apps SET settings = settings || $2::jsonb, updated_at = now() WHERE id = $1"
        " RETURNING settings",
        app_id, patch,
    )
    return dict(r or {})


async def rotate_secret(conn: asyncpg.Pool | asyncpg.Connection | PoolConnectionProxy, app_id: int,
                        grace_seconds: float) -> AppRow:
    """A new secret; the current one becomes the previous, verifying for grace_seconds more."""
    r = await conn.fetchrow(
        "UPDATE apps SET previous_secret = api_secret, api_secret = $2,"
        " previous_secret_expires_at = now() + $3::interval, secret_rotated_at = now(), updated_at = now()"
        f" WHERE id = $1 RETURNING {_COLS}",
        app_id, secretbox.seal(secrets.token_urlsafe(48)), timedelta(seconds=grace_seconds),
    )
    assert r is not None
    return _row(r)


async def seal_plain(conn: asyncpg.Pool | asyncpg.Connection) -> int:
    """Encrypt the secrets still stored plain (rows from before a key was set); returns how many."""
    if not secretbox.key():
        return 0
    rows = await conn.fetch(
        "SELECT id, api_secret, previous_secret FROM apps WHERE api_secret NOT LIKE 'enc1:%'"
        " OR previous_secret NOT LIKE 'enc1:%'")
    for r in rows:
        prev = r["previous_secret"]
        await conn.execute(
            "UPDATE apps SET api_secret = $2, previous_secret = $3 WHERE id = $1", r["id"],
            secretbox.seal(secretbox.reveal(r["api_secret"])),
            secretbox.seal(secretbox.reveal(prev)) if prev else None,
        )
    return len(rows)

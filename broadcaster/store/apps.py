"""Apps: tenant rows holding api_key, secret and settings."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy


@dataclass(frozen=True)
class AppRow:
    id: int
    name: str
    api_key: str
    api_secret: str
    settings: dict[str, Any]


def _row(r: asyncpg.Record) -> AppRow:
    return AppRow(r["id"], r["name"], r["api_key"], r["api_secret"], r["settings"] or {})


async def by_key(conn: asyncpg.Pool | asyncpg.Connection, api_key: str) -> AppRow | None:
    r = await conn.fetchrow(
        "SELECT id, name, api_key, api_secret, settings FROM apps WHERE api_key = $1", api_key
    )
    return _row(r) if r else None


async def by_id(conn: asyncpg.Pool | asyncpg.Connection, app_id: int) -> AppRow | None:
    r = await conn.fetchrow(
        "SELECT id, name, api_key, api_secret, settings FROM apps WHERE id = $1", app_id
    )
    return _row(r) if r else None


async def by_name(conn: asyncpg.Pool | asyncpg.Connection, name: str) -> AppRow | None:
    r = await conn.fetchrow(
        "SELECT id, name, api_key, api_secret, settings FROM apps WHERE name = $1 ORDER BY id LIMIT 1",
        name,
    )
    return _row(r) if r else None


async def create(conn: asyncpg.Pool | asyncpg.Connection, name: str) -> AppRow:
    r = await conn.fetchrow(
        "INSERT INTO apps (name, api_key, api_secret) VALUES ($1, $2, $3)"
        " RETURNING id, name, api_key, api_secret, settings",
        name, secrets.token_hex(8), secrets.token_urlsafe(48),
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

"""Keys generated once per installation and shared by every process (through PostgreSQL)."""

from __future__ import annotations

import asyncpg

from broadcaster import secretbox


async def secret(conn: asyncpg.Connection, name: str) -> str:
    """The installation's key called name, generated on first use (concurrent first uses agree)."""
    await conn.execute(
        "INSERT INTO installation_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        name, secretbox.seal(secretbox.generate_key()),
    )
    value = await conn.fetchval("SELECT value FROM installation_secrets WHERE name = $1", name)
    return secretbox.reveal(str(value))

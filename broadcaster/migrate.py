"""Forward-only plain-SQL migrations, applied in order under an advisory lock."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import asyncpg

logger = logging.getLogger("broadcaster.migrate")
LOCK_KEY = 0x6272_6F61_6463  # "broadc": one lock for every migrating process
FILE_RE = re.compile(r"^(\d{4})_[A-Za-z0-9_]+\.sql$")


def migrations_dir() -> Path:
    env = os.environ.get("BROADCASTER_MIGRATIONS_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent / "migrations"


def discover(directory: Path | None = None) -> list[tuple[int, str, Path]]:
    d = directory or migrations_dir()
    found = []
    for p in sorted(d.iterdir()):
        m = FILE_RE.match(p.name)
        if m:
            found.append((int(m.group(1)), p.name, p))
    versions = [v for v, _, _ in found]
    if len(versions) != len(set(versions)):
        raise RuntimeError(f"duplicate migration numbers in {d}")
    return found


async def migrate(dsn: str, directory: Path | None = None) -> list[str]:
    """Apply pending migrations; returns the names applied (empty when up to date)."""
    conn = await asyncpg.connect(dsn)
    applied: list[str] = []
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version int PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
            for version, name, path in discover(directory):
                if version in done:
                    continue
                async with conn.transaction():
                    await conn.execute(path.read_text())
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", version, name
                    )
                logger.info("applied migration %s", name)
                applied.append(name)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
    finally:
        await conn.close()
    return applied

"""PostgreSQL connections: asyncpg pools with orjson codecs for json/jsonb."""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson


def _encode(v: Any) -> str:
    return orjson.dumps(v).decode()


async def init_connection(conn: asyncpg.Connection) -> None:
    for typ in ("jsonb", "json"):
        await conn.set_type_codec(typ, encoder=_encode, decoder=orjson.loads, schema="pg_catalog")


async def create_pool(dsn: str, min_size: int = 2, max_size: int = 10) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, init=init_connection, command_timeout=120
    )
    assert pool is not None
    return pool


async def connect(dsn: str) -> asyncpg.Connection:
    conn = await asyncpg.connect(dsn)
    await init_connection(conn)
    return conn

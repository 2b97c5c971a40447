"""PostgreSQL connections: asyncpg pools with orjson codecs for json/jsonb, and the one
definition of "PostgreSQL is unreachable" that the API (503) and the worker (backoff) share."""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson

# A server that does not answer within this makes acquire() fail instead of hanging for
# asyncpg's default 60 s: the API answers 503 and the worker backs off while it is down.
CONNECT_TIMEOUT_S = 5.0

# Errors that say the server is gone or not (yet) accepting connections, never a bad query:
# refused/reset sockets and timeouts (OSError), connection-level failures (class 08, incl. a
# connection cut under a query), admin/crash shutdown and "the database system is starting up"
# (class 57).
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
)


def unavailable(exc: BaseException) -> bool:
    """True when exc means PostgreSQL is unreachable right now (a retry later may succeed)."""
    if isinstance(exc, _UNAVAILABLE):
        return not isinstance(exc, asyncpg.exceptions.QueryCanceledError)
    # asyncpg raises InterfaceError("connection is closed") for a connection the server dropped.
    return isinstance(exc, asyncpg.InterfaceError) and "connection is closed" in str(exc)


def _encode(v: Any) -> str:
    return orjson.dumps(v).decode()


async def init_connection(conn: asyncpg.Connection) -> None:
    for typ in ("jsonb", "json"):
        await conn.set_type_codec(typ, encoder=_encode, decoder=orjson.loads, schema="pg_catalog")


async def create_pool(dsn: str, min_size: int = 2, max_size: int = 10) -> asyncpg.Pool:
    """A pool that heals by itself: asyncpg replaces a connection the server closed (crash,
    restart) on its next acquire, and one that breaks mid-query is terminated on release.
    min_size=0 connects nothing up front (the API starting while PostgreSQL is down)."""
    pool = await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, init=init_connection, command_timeout=120,
        timeout=CONNECT_TIMEOUT_S,
    )
    assert pool is not None
    return pool


async def connect(dsn: str) -> asyncpg.Connection:
    conn = await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT_S)
    await init_connection(conn)
    return conn

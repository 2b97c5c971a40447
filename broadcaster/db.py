"""PostgreSQL connections: asyncpg pools with orjson codecs for json/jsonb, and the one
definition of "PostgreSQL is unreachable" that the API (503) and the worker (backoff) share."""

from __future__ import annotations

import logging
import time
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


class PoolFloorNotes(logging.Filter):
    """asyncpg's pool retries its connection floor while PostgreSQL is down and logs each
    failure with a traceback, about once a second: one line without the traceback when the
    outage starts and then one a minute is enough to say the database is still away."""

    EVERY_S = 60.0

    def __init__(self) -> None:
        super().__init__()
        self.last = -1e18

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None or not unavailable(exc):
            return True
        now = time.monotonic()
        if now - self.last < self.EVERY_S:
            return False
        self.last = now
        record.msg = f"{record.msg} (PostgreSQL unreachable: {type(exc).__name__}: {str(exc)[:200]})"
        record.args, record.exc_info, record.exc_text = (), None, None
        return True


def quiet_pool_retries() -> None:
    pool_logger = logging.getLogger("asyncpg.pool")
    if not any(isinstance(f, PoolFloorNotes) for f in pool_logger.filters):
        pool_logger.addFilter(PoolFloorNotes())


def _encode(v: Any) -> str:
    return orjson.dumps(v).decode()


async def init_connection(conn: asyncpg.Connection) -> None:
    for typ in ("jsonb", "json"):
        await conn.set_type_codec(typ, encoder=_encode, decoder=orjson.loads, schema="pg_catalog")


async def create_pool(dsn: str, min_size: int = 2, max_size: int = 10,
                      command_timeout: float = 120.0) -> asyncpg.Pool:
    """A pool that heals by itself: asyncpg replaces a connection the server closed (crash,
    restart) on its next acquire, and one that breaks mid-query is terminated on release.
    min_size=0 connects nothing up front (the API starting while PostgreSQL is down).
    command_timeout: how long one statement may take before the client gives up on it."""
    pool = await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, init=init_connection, command_timeout=command_timeout,
        timeout=CONNECT_TIMEOUT_S,
    )
    assert pool is not None
    return pool


async def connect(dsn: str) -> asyncpg.Connection:
    conn = await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT_S)
    await init_connection(conn)
    return conn

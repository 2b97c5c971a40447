"""Which failures mean "a dependency is unreachable right now" (retry later), not a bug: the
one definition the API (503 code 80) and the worker supervisor (backoff, rebuild) share."""

from __future__ import annotations

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from broadcaster import db

DATABASE = "the database"
QUEUE = "the job queue"


def dependency(exc: BaseException) -> str | None:
    """DATABASE (PostgreSQL) or QUEUE (Redis) when exc comes from that dependency being
    unreachable, else None. The exception's chain counts: redis-py turns a connection lost
    under WATCH into a WatchError raised while handling the ConnectionError (that took a
    worker down in tests/test_faults.py)."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return None
        if isinstance(seen, RedisConnectionError | RedisTimeoutError):
            return QUEUE
        if db.unavailable(seen):
            return DATABASE
        seen = seen.__cause__ or seen.__context__
    return None

"""The installation's cursor key, when none is configured.

The built-in cursor key is the same in every installation, so unless insecure defaults are
allowed (the tests), every serve and worker process uses this installation's own key,
generated once and kept in PostgreSQL (store/installation.py). It is loaded when PostgreSQL
answers: at startup, or else by the first authenticated request (which needs PostgreSQL
anyway, and answers 503 while it is down), so a process started during an outage still
starts and serves 503s.
"""

from __future__ import annotations

from typing import Any

from broadcaster.settings import DEFAULT_CURSOR_SECRET, Settings
from broadcaster.store import installation


def needs_key(settings: Settings) -> bool:
    return settings.cursor_secret == DEFAULT_CURSOR_SECRET and not settings.allow_insecure_defaults


async def load(settings: Settings, pool: Any) -> None:
    """Idempotent. Settings is frozen and shared by every handler and job of the process: the
    key is set on it in place, once, so everything holding it signs with the same key."""
    if not needs_key(settings):
        return
    async with pool.acquire() as conn:
        key = await installation.secret(conn, "cursor_secret")
    object.__setattr__(settings, "cursor_secret", key)

"""The webhook outbox: events are added inside the transaction of the change causing them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg
import orjson


async def add(
    conn: asyncpg.Connection, app_id: int, event_type: str, payload: dict[str, Any],
    campaign_id: str | None = None,
) -> None:
    await conn.execute(
        "INSERT INTO outbox (app_id, event_type, campaign_id, payload) VALUES ($1, $2, $3, $4)",
        app_id, event_type, campaign_id, payload,
    )


async def add_many(
    conn: asyncpg.Connection, app_id: int, campaign_id: str | None,
    events: Sequence[tuple[str, bytes | dict[str, Any]]],
) -> None:
    """Set-based insert of (event_type, payload) pairs; payloads may be pre-serialised JSON."""
    if not events:
        return
    types = [t for t, _ in events]
    bodies = [p.decode() if isinstance(p, bytes) else orjson.dumps(p).decode() for _, p in events]
    await conn.execute(
        "INSERT INTO outbox (app_id, event_type, campaign_id, payload)"
        " SELECT $1, t, $2, p::jsonb FROM unnest($3::text[], $4::text[]) AS x(t, p)",
        app_id, campaign_id, types, bodies,
    )


async def depth(conn: asyncpg.Pool | asyncpg.Connection) -> int:
    """Events not yet delivered (the outbox depth gauge of /metrics): not yet routed to their
    receivers, plus deliveries still pending (webhook_deliveries, broadcaster/migrations/0006)."""
    return int(await conn.fetchval(
        "SELECT (SELECT count(*) FROM outbox)"
        " + (SELECT count(*) FROM webhook_deliveries WHERE state = 'pending')"
    ))

"""The webhook part of the bench against the smallest receiver a user would write (a plain
`http.server.ThreadingHTTPServer`, broadcaster/plainreceiver.py): deliveries/s, retries and
duplicates for one campaign's worth of events (campaign.started, n message.new,
campaign.completed) written to the outbox at once."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import orjson

from broadcaster import db
from broadcaster.plainreceiver import PlainReceiver
from broadcaster.store import outbox

BODY = {"type": "message.new", "cid": "messaging:bench", "channel_type": "messaging",
        "channel_id": "bench", "message": {"id": "m", "text": "hello " * 20, "type": "regular"},
        "user": {"id": "sender"}, "created_at": "2026-01-01T00:00:00.000000Z"}


async def plain_receiver_run(dsn: str, app_id: int, recv: PlainReceiver, n: int, campaign: str,
                             timeout_s: float = 600) -> dict[str, Any]:
    """Put one campaign's events in the outbox for an app whose webhook_url is `recv`; time
    until campaign.completed arrived and report what the receiver saw."""
    conn = await asyncpg.connect(dsn)
    await db.init_connection(conn)
    events: list[tuple[str, bytes | dict[str, Any]]] = [
        ("campaign.started", {"type": "campaign.started", "campaign": {"id": campaign}}),
        *[("message.new", orjson.dumps(BODY))] * n,
        ("campaign.completed", {"type": "campaign.completed", "campaign": {"id": campaign}}),
    ]
    before = len(recv.snapshot())
    try:
        async with conn.transaction():
            await outbox.add_many(conn, app_id, campaign, events)
    finally:
        await conn.close()
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout_s:
        hits = recv.snapshot()[before:]
        if any(h.type == "campaign.completed" for h in hits):
            break
        await asyncio.sleep(0.05)
    seconds = time.perf_counter() - t0
    hits = recv.snapshot()[before:]
    ids = {h.webhook_id for h in hits}
    return {"events": len(events), "delivered": len(ids), "requests": len(hits),
            "retries": sum(1 for h in hits if h.attempt > 1), "duplicates": len(hits) - len(ids),
            "seconds": round(seconds, 2), "deliveries_per_s": round(len(ids) / seconds),
            "completed_last": bool(hits) and hits[-1].type == "campaign.completed"}

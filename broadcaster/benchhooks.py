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
from broadcaster.benchparts import Sink, progress
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


async def sink_run(dsn: str, app_id: int, sink: Sink, k: int) -> dict[str, Any]:
    """Signed deliveries/s from the worker(s) to the local sink: k events put in the outbox
    in one transaction, timed until the sink has them all."""
    progress(f"webhooks: {k} events through the outbox to a local receiver")
    body = {"type": "message.new", "cid": "messaging:bench", "channel_type": "messaging",
            "channel_id": "bench", "message": {"id": "m", "text": "hello " * 20, "type": "regular"},
            "user": {"id": "sender"}, "created_at": "2026-01-01T00:00:00.000000Z"}
    conn = await asyncpg.connect(dsn)
    await db.init_connection(conn)
    # Count only these message.new events: campaign events of the earlier run may still arrive.
    def got() -> int:
        return sink.by_type.get("message.new", 0) - start_count

    start_count = sink.by_type.get("message.new", 0)
    async with conn.transaction():
        await outbox.add_many(conn, app_id, None, [("message.new", body)] * k)
    await conn.close()
    t0 = time.perf_counter()
    # Bounded by the size of the run: a stalled delivery is reported (delivered < events), not
    # waited out for ten minutes.
    limit_s = max(60.0, k / 100)
    while got() < k:
        if time.perf_counter() - t0 > limit_s:
            progress(f"webhooks: only {got()} of {k} delivered after {limit_s:.0f} s; giving up")
            break
        await asyncio.sleep(0.05)
    seconds = time.perf_counter() - t0
    return {"deliveries_per_s": round(got() / seconds), "delivered": got(), "events": k}

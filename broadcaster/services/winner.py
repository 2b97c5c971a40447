"""A/B with a winner (SPEC 5C): the variants go to the test audience first (the batches'
first pass sends only to it), the campaign then waits `wait` (in_progress, stats
waiting_for_winner), and the best variant by the metric goes to everyone else in a second
pass. Driven from the completion check (the last batch, and the 1 s tick): a stop or pause
during the wait leaves it where it is."""

from __future__ import annotations

from broadcaster.domain import variants
from broadcaster.store import ledger
from broadcaster.store import winner as store
from broadcaster.store.ledger import Tx


async def step(conn: Tx, app_id: int, cid: str) -> None:
    r = await store.state(conn, app_id, cid)
    if r is None or r["winner_phase"] == "sending" or r["status"] != "in_progress" or not r["planned"]:
        return
    if r["winner_phase"] is None:
        if not r["open"]:
            await store.to_waiting(conn, app_id, cid, variants.wait_seconds(r["winner"]["wait"]))
        return
    if not r["due"]:
        return
    async with conn.transaction():
        locked = await store.lock_waiting(conn, app_id, cid)
        if locked is None:
            return
        counts = (await ledger.stats_many(conn, app_id, [cid]))[cid].get("variants") or {}
        vs = r["message_template"].get("variants") or []
        won = variants.pick_winner(r["winner"]["metric"], vs, counts)
        await store.to_sending(conn, app_id, cid, won, int(locked["plan_batches"]))

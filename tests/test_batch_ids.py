"""A batch writes the same message ids and new channel ids at every attempt (ids.batch_prefix,
migration 0241): a batch commit that a PostgreSQL crash loses (batches commit asynchronously)
is redone under the ids a reader may already have seen, not under new ones."""

from __future__ import annotations

from typing import Any

import pytest

from broadcaster import ids
from broadcaster.services import sending
from broadcaster.store import campaigns, fanout
from tests.helpers import Api, await_for

USERS = [f"b{i:02d}" for i in range(45)]


@pytest.fixture
def settings(settings: Any) -> Any:
    return settings.with_(batch_size=20)


async def _written(conn: Any, cid: str) -> dict[str, tuple[str, str]]:
    """receiver -> (message id, channel cid) of the campaign's messages."""
    rows = await conn.fetch("SELECT r.target_id, r.message_id, r.channel_cid FROM campaign_recipients r"
                            " WHERE r.campaign_id = $1 AND r.status = 'sent'", cid)
    return {r["target_id"]: (r["message_id"], r["channel_cid"]) for r in rows}


async def test_a_batch_redone_after_its_commit_was_lost_writes_the_same_ids(
    api: Api, pool: Any, start_worker: Any,
) -> None:
    st, body = await api.post("/users", {"users": {u: {"id": u} for u in ["boss", *USERS]}})
    assert st in (200, 201), body
    st, body = await api.post("/campaigns", {
        "id": "again", "sender_id": "boss", "user_ids": USERS, "skip_webhook": True, "create_channels": True,
        "channel_template": {"type": "messaging"}, "message_template": {"text": "Hi {{ receiver.id }}"}})
    assert st == 201, body
    assert (await api.post("/campaigns/again/start"))[0] == 200
    app_id = int(await pool.fetchval("SELECT app_id FROM users WHERE id = 'boss'"))

    async def planned() -> int:
        return int(await pool.fetchval("SELECT count(*) FROM campaign_batches WHERE campaign_id = 'again'"))
    assert await await_for(planned, timeout=60) == 3

    # batch 1 written as the worker writes it, then its transaction lost
    async with pool.acquire() as conn:
        tr = conn.transaction()
        await tr.start()
        camp = await campaigns.get(conn, app_id, "again", lock="KEY SHARE")
        b = await fanout.batch_row(conn, app_id, "again", 1)
        prefix = ids.batch_prefix(app_id, "again", 1, b["planned_at"])
        sent, *_ = await sending.write_batch(conn, camp, 1, b["n"], (b["after_id"], b["upto_id"]), False,
                                             prefix=prefix)
        assert sent == 20
        lost = await _written(conn, "again")
        await tr.rollback()
    assert len(lost) == 20 and not await _written(pool, "again")

    start_worker()

    async def done() -> bool:
        st, body = await api.get("/campaigns/again")
        return bool(body["campaign"]["status"] == "completed")
    await await_for(done, timeout=120)
    final = await _written(pool, "again")
    assert len(final) == 45
    assert {u: final[u] for u in lost} == lost  # the same message and the same new 1:1 channel
    assert all(m.startswith(prefix) for m, _ in lost.values())
    # every batch's messages share its prefix: one per batch, in batch order
    prefixes = sorted({m[:31] for m, _ in final.values()})
    assert len(prefixes) == 3 and prefix == prefixes[1], (prefixes, prefix)
    assert all(c.startswith("messaging:!members-") for _, c in final.values())

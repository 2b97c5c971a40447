"""Deleting a campaign: a small one goes inside the request; a large one's per-recipient rows
are purged by the worker in chunks (store/purges.py), its id refused until that is done, and
its counted sends still count against the caps."""

from __future__ import annotations

from typing import Any

import pytest

from broadcaster import devstack
from broadcaster.store import purges
from tests.helpers import Api, assert_error, await_for

USERS = [f"p{i:02d}" for i in range(30)]


@pytest.fixture
def settings(settings: Any) -> Any:
    # 30 recipients count as "large" here, as 50,001 do by default
    return settings.with_(batch_size=20, delete_inline_max=5)


async def _done(api: Api, cid: str) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        st, b = await api.get(f"/campaigns/{cid}")
        return b["campaign"] if b["campaign"]["status"] == "completed" else None
    return await await_for(check, timeout=120)  # type: ignore[no-any-return]


async def _campaign(api: Api, cid: str, users: list[str]) -> None:
    st, body = await api.post("/campaigns", {
        "id": cid, "sender_id": "boss", "user_ids": users, "skip_webhook": True,
        "create_channels": True, "channel_template": {"type": "messaging"}, "message_template": {"text": cid}})
    assert st == 201, body


async def _rows(pool: Any, cid: str) -> dict[str, int]:
    return {t: await pool.fetchval(f"SELECT count(*) FROM {t} WHERE campaign_id = $1", cid)
            for t in (*purges.LARGE, *purges.SMALL)}


async def test_a_large_campaign_is_deleted_at_once_and_purged_by_the_worker(
    api: Api, pool: Any, start_worker: Any,
) -> None:
    st, body = await api.post("/users", {"users": {u: {"id": u} for u in ["boss", "q00", *USERS]}})
    assert st in (200, 201), body
    assert (await api.patch("/app", {"frequency_caps": [{"max": 1, "period": "1d"}]}))[0] == 200
    await _campaign(api, "big", USERS)
    worker = start_worker()
    assert (await api.post("/campaigns/big/start"))[0] == 200
    assert (await _done(api, "big"))["stats"]["stats_messages_sent"] == 30
    devstack.stop_processes([worker], 10)  # nothing purges until the next worker starts

    st, body = await api.delete("/campaigns/big")
    assert st == 200, body
    assert_error(*await api.get("/campaigns/big"), 404, 16, "big")
    st, body = await api.post("/campaigns/query", {"filter_conditions": {"id": "big"}})
    assert st == 200 and body["campaigns"] == [], body
    left = await _rows(pool, "big")
    assert left["campaign_recipients"] == 30 and left["campaign_audience"] == 30, left
    assert left["campaign_batches"] == 0 and left["campaign_minutes"] == 0, left
    assert [r["campaign_id"] for r in await purges.pending(pool, await _app_id(pool))] == ["big"]
    # its rows are keyed by the id alone: the id is refused until they are gone
    st, body = await api.post("/campaigns", {"id": "big", "sender_id": "boss", "user_ids": ["p00"],
                                              "message_template": {"text": "again"}})
    assert_error(st, body, 409, 4, "big", "still being removed")
    # the messages stay in their channels, but a conversion is not attributed to the deleted
    # campaign while its ledger rows wait for the purge
    assert await pool.fetchval("SELECT count(*) FROM messages WHERE campaign_id = 'big'") == 30
    st, body = await api.post("/conversions", {"conversions": [{"id": "x1", "user_id": "p03", "event": "buy"}]})
    assert st == 200, body
    assert [(c["status"], c["campaign_id"]) for c in body["conversions"]] == [("unattributed", None)]

    # one chunk in process: the ledger goes first, each send it counted moves to policy_kept
    async with pool.acquire() as conn, conn.transaction():
        n, done = await purges.purge_chunk(conn, await _app_id(pool), ["big"], 12)
    assert (n, done) == (12, False)
    assert (await _rows(pool, "big"))["campaign_recipients"] == 18
    assert await pool.fetchval("SELECT count(*) FROM policy_kept") == 12
    assert (await purges.pending(pool, await _app_id(pool)))[0]["rows_deleted"] == 12

    start_worker()  # its campaign_purge cron does the rest

    async def purged() -> bool:
        return not await purges.pending(pool, await _app_id(pool))
    await await_for(purged, timeout=120)
    assert set((await _rows(pool, "big")).values()) == {0}
    kept = await pool.fetch("SELECT user_id FROM policy_kept ORDER BY user_id")
    assert [r[0] for r in kept] == USERS  # each send kept once, none twice

    # the id is free again, and the deleted campaign's sends still cap its users
    await _campaign(api, "big", [*USERS[:2], "q00"])
    assert (await api.post("/campaigns/big/start"))[0] == 200
    await _done(api, "big")
    rows = await pool.fetch("SELECT target_id, status, error FROM campaign_recipients WHERE campaign_id = 'big'"
                            " ORDER BY target_id")
    assert [tuple(r) for r in rows] == [("p00", "skipped", "frequency_capped"),
                                        ("p01", "skipped", "frequency_capped"), ("q00", "sent", None)]


async def test_a_small_campaign_goes_inside_the_request(api: Api, pool: Any) -> None:
    st, body = await api.post("/users", {"users": {u: {"id": u} for u in ["boss", *USERS[:5]]}})
    assert st in (200, 201), body
    await _campaign(api, "small", USERS[:5])
    assert (await api.post("/campaigns/small/start"))[0] == 200

    async def planned() -> bool:
        return await pool.fetchval("SELECT count(*) FROM campaign_audience WHERE campaign_id = 'small'") == 5
    await await_for(planned, timeout=60)
    assert (await api.post("/campaigns/small/stop"))[0] == 200
    assert (await api.delete("/campaigns/small"))[0] == 200
    assert set((await _rows(pool, "small")).values()) == {0}
    assert not await purges.pending(pool, await _app_id(pool))
    await _campaign(api, "small", USERS[:1])


async def test_two_apps_purges_take_turns(api: Api, other_api: Api, pool: Any) -> None:
    """A chunk that leaves rows behind goes to the back: one app's huge delete does not hold up
    another app's purge."""
    for client, cid in ((api, "huge"), (other_api, "other")):
        st, body = await client.post("/users", {"users": {"boss": {"id": "boss"}}})
        assert st in (200, 201), body
        st, body = await client.post("/campaigns", {"id": cid, "sender_id": "boss", "user_ids": ["boss"],
                                                    "message_template": {"text": "x"}})
        assert st == 201, body
    # a finished campaign's ledger, written as the fan-out would have (30 and 20 rows)
    await pool.execute(
        "INSERT INTO campaign_recipients (app_id, campaign_id, target_id, user_id, status)"
        " SELECT c.app_id, c.id, 't' || g, 't' || g, 'sent' FROM campaigns c"
        " CROSS JOIN generate_series(1, CASE c.id WHEN 'huge' THEN 30 ELSE 20 END) g")
    await pool.execute("UPDATE campaigns SET status = 'completed'")
    assert (await api.delete("/campaigns/huge"))[0] == 200
    assert (await other_api.delete("/campaigns/other"))[0] == 200
    order = []
    while True:
        async with pool.acquire() as conn, conn.transaction():
            got = await purges.next_purges(conn)
            if got is None:
                break
            n, done = await purges.purge_chunk(conn, got[0], got[1], 10)
        order.append((got[1], n, done))
    assert order == [(["huge"], 10, False), (["other"], 10, False), (["huge"], 10, False),
                     (["other"], 10, False), (["huge"], 10, False), (["other"], 0, True), (["huge"], 0, True)]
    assert not await pool.fetchval("SELECT count(*) FROM campaign_recipients")


async def _app_id(pool: Any) -> int:
    return int(await pool.fetchval("SELECT app_id FROM users WHERE id = 'boss'"))

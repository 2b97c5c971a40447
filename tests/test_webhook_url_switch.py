"""A receiver's URL changed by PATCH /app: every event routed after the PATCH goes to the new
URL on its first attempt (the dispatcher sends to the URL recorded on the delivery row, read
at routing, never to settings it cached), and the pending retries of events routed before it
go to the new URL too (PATCH re-points them), as replay does."""

from __future__ import annotations

import asyncio

import orjson
from aiohttp import web

from broadcaster.store import deliveries
from tests.helpers import Api, await_for
from tests.test_webhook_adaptive import _users
from tests.test_webhook_delivery import Receiver, add_events, ev

N = 300


def _completed(r: Receiver, campaign: str) -> bool:
    return any(g["event"].get("type") == "campaign.completed"
               and (g["event"].get("campaign") or {}).get("id") == campaign for g in r.got)


async def test_campaign_started_right_after_a_url_switch_goes_to_the_new_url(api: Api, start_worker) -> None:
    a, b = await Receiver().start(), await Receiver().start()
    try:
        st, body = await api.patch("/app", {"webhook_url": a.url, "webhook_rate_limit": 0})
        assert st == 200, body
        ids = await _users(api, N)
        for cid in ("one", "two"):
            st, body = await api.post("/campaigns", {
                "id": cid, "sender_id": "boss", "user_ids": ids, "message_template": {"text": "Hi"},
                "create_channels": True, "channel_template": {"type": "messaging"}})
            assert st == 201, body
        start_worker()
        st, body = await api.post("/campaigns/one/start")
        assert st == 200, body

        async def one_in_at_a() -> bool:
            return _completed(a, "one")

        await await_for(one_in_at_a, timeout=90, interval=0.01)
        # at once, while the worker that just sent campaign one to A is still running
        st, body = await api.patch("/app", {"webhook_url": b.url})
        assert st == 200, body
        at_a = len(a.got)
        st, body = await api.post("/campaigns/two/start")
        assert st == 200, body

        async def two_in_at_b() -> bool:
            return _completed(b, "two")

        await await_for(two_in_at_b, timeout=90, interval=0.1)
        stale = [g["event"].get("type") for g in a.got[at_a:]]
        assert stale == [], f"{len(stale)} events went to the old URL: {stale[:5]}"
        # started, N messages (their channels exist since campaign one), completed
        assert [g["event"]["type"] for g in b.got].count("message.new") == N
        assert len(b.got) == N + 2, len(b.got)
        assert {g["headers"]["X-Webhook-Attempt"] for g in b.got} == {"1"}
        assert len(b.ids()) == N + 2
        assert b.got[0]["event"]["type"] == "campaign.started"
        assert b.got[-1]["event"]["type"] == "campaign.completed"
    finally:
        await a.stop()
        await b.stop()


async def test_pending_retries_follow_the_url_to_the_new_receiver(api: Api, pool, start_worker) -> None:
    a, b = await Receiver().start(), await Receiver().start()
    a.answer = lambda req: web.Response(status=503, text="busy")
    try:
        st, body = await api.patch("/app", {"webhook_url": a.url, "webhook_rate_limit": 0})
        assert st == 200, body
        n = 20
        await add_events(pool, api.creds.app_id, [ev("message.new", None, i) for i in range(n)])
        start_worker()

        async def all_tried_at_a() -> bool:
            return len(a.ids()) == n

        await await_for(all_tried_at_a, timeout=60, interval=0.05)
        st, body = await api.patch("/app", {"webhook_url": b.url})
        assert st == 200, body
        urls = await pool.fetch("SELECT DISTINCT url FROM webhook_deliveries WHERE state = 'pending'")
        assert [r["url"] for r in urls] == [b.url]

        async def all_at_b() -> bool:
            return len(b.ids()) == n

        await await_for(all_at_b, timeout=60, interval=0.05)
        assert b.ids() == a.ids()  # the same events, by their ids, now at B
        assert all(int(g["headers"]["X-Webhook-Attempt"]) >= 2 for g in b.got)
        assert {orjson.loads(g["body"])["n"] for g in b.got} == set(range(n))
    finally:
        await a.stop()
        await b.stop()


async def test_a_url_switch_and_recorded_results_on_the_same_rows_wait_instead_of_deadlocking(
        api: Api, pool) -> None:
    """The PATCH re-points the receiver's pending rows while a worker records results for some
    of them (one delivered, one to retry): both lock the rows in id order, so whichever comes
    second waits. Rows a < c < b; c is held by a third transaction so the PATCH stops holding
    a; the worker's results then ask for b and a. Locked in any other order, each would hold
    what the other waits for, and PostgreSQL would abort one: the PATCH's 500, or results
    lost until their lease runs out and the events go out twice."""
    old, new = "http://127.0.0.1:9/old", "http://127.0.0.1:9/new"
    st, body = await api.patch("/app", {"webhook_url": old, "webhook_rate_limit": 0})
    assert st == 200, body
    a, c, b = [r["id"] for r in await pool.fetch(
        "INSERT INTO webhook_deliveries (app_id, event_id, receiver, url, event_type, barrier,"
        " payload, next_at) SELECT $1, g, 'webhook_url', $2, 'message.new', false, '{}',"
        " now() + interval '1 hour' FROM generate_series(1, 3) g RETURNING id",
        api.creds.app_id, old)]

    async def waiting_on(pid: int) -> int | None:
        return await pool.fetchval(  # type: ignore[no-any-return]
            "SELECT pid FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))", pid)

    async with pool.acquire() as hold, pool.acquire() as worker:
        tx = hold.transaction()
        await tx.start()
        await hold.execute("SELECT 1 FROM webhook_deliveries WHERE id = $1 FOR UPDATE", c)
        patch = asyncio.create_task(api.patch("/app", {"webhook_url": new}))
        patch_pid = await await_for(lambda: waiting_on(hold.get_server_pid()), timeout=30, interval=0.01)

        async def record() -> None:
            async with worker.transaction():
                await deliveries.finish(worker, delivered=[(b, 0)],
                                        retries=[(a, 0, 60.0, 503, "busy")], failures=[], released=[])

        results = asyncio.create_task(record())
        await await_for(lambda: waiting_on(patch_pid), timeout=30, interval=0.01)
        await tx.rollback()
        st, body = await patch
        await results  # raises DeadlockDetectedError if PostgreSQL had to break a cycle
    assert st == 200, body
    rows = {r["id"]: r for r in await pool.fetch("SELECT id, url, last_status FROM webhook_deliveries")}
    assert sorted(rows) == [a, c]  # b delivered
    assert rows[a]["url"] == new and rows[a]["last_status"] == 503
    assert rows[c]["url"] == new

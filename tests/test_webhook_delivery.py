"""Webhook delivery by a real worker process to a real receiver: signatures, retries,
Retry-After, outages, filtering, failures and replay, a worker killed mid-delivery."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from aiohttp import web
from stream_chat import StreamChat

from broadcaster.devstack import free_port
from broadcaster.store import outbox
from broadcaster.webhooks import verify
from tests.helpers import Api, await_for


class Receiver:
    """An aiohttp server recording every request; `answer` decides each response."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.got: list[dict[str, Any]] = []
        self.answer: Callable[[dict[str, Any]], Any] = lambda req: web.Response(text="ok")
        self.delay = 0.0
        self.runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        req = {"body": body, "headers": dict(request.headers), "at": time.monotonic(),
               "event": orjson.loads(body)}
        self.got.append(req)
        if self.delay:
            await asyncio.sleep(self.delay)
        return self.answer(req)  # type: ignore[no-any-return]

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self.runner:
            await self.runner.cleanup()
            self.runner = None

    def ids(self) -> set[str]:
        return {g["headers"]["X-Webhook-Id"] for g in self.got}


@pytest.fixture
async def receiver():
    r = await Receiver().start()
    yield r
    await r.stop()


def ev(kind: str, cid: str | None, n: int = 0) -> dict[str, Any]:
    return {"type": kind, "campaign_id": cid, "n": n, "created_at": "2026-01-01T00:00:00.000000Z"}


async def add_events(pool, app_id: int, events: list[dict[str, Any]]) -> None:
    async with pool.acquire() as conn, conn.transaction():
        for e in events:
            await outbox.add(conn, app_id, e["type"], e, e.get("campaign_id"))


async def test_signed_ordered_delivery(api: Api, pool, receiver: Receiver, start_worker):
    st, body = await api.patch("/app", {"webhook_url": receiver.url})
    assert st == 200, body
    msgs = [ev("message.new", "c1", i) for i in range(20)]
    await add_events(pool, api.creds.app_id, [ev("campaign.started", "c1"), *msgs,
                                              ev("campaign.completed", "c1")])
    start_worker()
    await await_for(lambda: _count(receiver, 22), timeout=30)
    sdk = StreamChat(api.creds.api_key, api.creds.api_secret)
    for g in receiver.got:
        sig = g["headers"]["X-Signature"]
        assert verify(g["body"], sig, api.creds.api_secret)
        assert sdk.verify_webhook(g["body"], sig)
        assert not verify(g["body"] + b" ", sig, api.creds.api_secret)
        assert g["headers"]["X-Api-Key"] == api.creds.api_key
        assert g["headers"]["X-Webhook-Attempt"] == "1"
    kinds = [g["event"]["type"] for g in receiver.got]
    assert kinds[0] == "campaign.started" and kinds[-1] == "campaign.completed"
    assert sorted(g["event"]["n"] for g in receiver.got[1:-1]) == list(range(20))
    assert len(receiver.ids()) == 22
    # consumed: nothing left behind in PostgreSQL
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 0
    await await_for(lambda: _empty(pool), timeout=10)


async def _count(r: Receiver, n: int) -> bool:
    return len(r.got) >= n


async def _empty(pool) -> bool:
    return await pool.fetchval("SELECT count(*) FROM webhook_deliveries") == 0


async def test_500_twice_then_200_is_three_attempts_one_id(api: Api, pool, receiver, start_worker):
    statuses = iter([500, 503, 200])
    receiver.answer = lambda req: web.Response(status=next(statuses), text="x")
    await api.patch("/app", {"webhook_url": receiver.url})
    await add_events(pool, api.creds.app_id, [ev("campaign.started", "c1")])
    start_worker()
    await await_for(lambda: _count(receiver, 3), timeout=30)
    assert [g["headers"]["X-Webhook-Attempt"] for g in receiver.got] == ["1", "2", "3"]
    assert len(receiver.ids()) == 1
    assert len({g["body"] for g in receiver.got}) == 1
    await await_for(lambda: _empty(pool), timeout=10)


async def test_429_retry_after_is_honoured(api: Api, pool, receiver, start_worker):
    first = [True]

    def answer(req):
        if first[0]:
            first[0] = False
            return web.Response(status=429, headers={"Retry-After": "2"})
        return web.Response(text="ok")

    receiver.answer = answer
    await api.patch("/app", {"webhook_url": receiver.url})
    await add_events(pool, api.creds.app_id, [ev("message.new", "c1")])
    start_worker()
    await await_for(lambda: _count(receiver, 2), timeout=30)
    assert receiver.got[1]["at"] - receiver.got[0]["at"] >= 1.9
    assert receiver.got[1]["headers"]["X-Webhook-Attempt"] == "2"


async def test_receiver_down_then_back_gets_everything(api: Api, pool, start_worker):
    down = Receiver()  # not started: connection refused
    await api.patch("/app", {"webhook_url": down.url})
    await add_events(pool, api.creds.app_id,
                     [ev("campaign.started", "c1")] + [ev("message.new", "c1", i) for i in range(30)])
    start_worker()

    async def tried() -> bool:
        return bool(await pool.fetchval(
            "SELECT count(*) FROM webhook_deliveries WHERE attempt >= 2 AND last_error IS NOT NULL"))

    await await_for(tried, timeout=30)
    await down.start()
    try:
        await await_for(lambda: _count(down, 31), timeout=40)
        assert len(down.ids()) == 31
        assert down.got[0]["event"]["type"] == "campaign.started"
    finally:
        await down.stop()


async def test_event_types_filtering_per_receiver(api: Api, pool, start_worker):
    main, hook, off = Receiver(), Receiver(), Receiver()
    for r in (main, hook, off):
        await r.start()
    try:
        st, body = await api.patch("/app", {
            "webhook_url": main.url, "webhook_events": ["campaign.started", "campaign.completed"],
            "event_hooks": [
                {"id": "msgs", "webhook_url": hook.url, "event_types": ["message.new"]},
                {"id": "off", "webhook_url": off.url, "enabled": False},
            ],
        })
        assert st == 200, body
        await add_events(pool, api.creds.app_id, [
            ev("campaign.started", "c1"), ev("message.new", "c1", 1), ev("channel.created", "c1"),
            ev("message.new", "c1", 2), ev("campaign.completed", "c1"),
        ])
        start_worker()
        await await_for(lambda: _count(main, 2), timeout=30)
        await await_for(lambda: _count(hook, 2), timeout=30)
        await await_for(lambda: _empty(pool), timeout=10)
        assert [g["event"]["type"] for g in main.got] == ["campaign.started", "campaign.completed"]
        assert sorted(g["event"]["n"] for g in hook.got) == [1, 2]
        assert off.got == []
        # each receiver has its own X-Webhook-Id for an event
        assert not main.ids() & hook.ids()
    finally:
        for r in (main, hook, off):
            await r.stop()


async def test_no_receiver_consumes_events(api: Api, pool, start_worker):
    await add_events(pool, api.creds.app_id, [ev("message.new", "c1")])
    start_worker()

    async def gone() -> bool:
        return await pool.fetchval("SELECT count(*) FROM outbox") == 0

    await await_for(gone, timeout=30)
    assert await pool.fetchval("SELECT count(*) FROM webhook_deliveries") == 0


async def test_final_failures_listed_and_replayed(api: Api, pool, receiver, start_worker):
    receiver.answer = lambda req: web.Response(status=400, text="bad event")
    await api.patch("/app", {"webhook_url": receiver.url})
    await add_events(pool, api.creds.app_id, [ev("message.new", None, i) for i in range(3)])
    start_worker()

    async def failed() -> Any:
        st, body = await api.get("/webhooks/failed", params={"limit": "2"})
        assert st == 200, body
        return body if len(body["webhooks"]) == 2 and body.get("next") else None

    page1 = await await_for(failed, timeout=30)
    item = page1["webhooks"][0]
    # the status and a category; the receiver's answer never comes back through our API
    assert item["last_status"] == 400 and item["last_error"] == "http_400"
    assert all("bad event" not in orjson.dumps(w).decode() for w in page1["webhooks"])
    assert item["attempts"] == 1 and item["payload"]["type"] == "message.new"
    st, page2 = await api.get("/webhooks/failed", params={"limit": "2", "next": page1["next"]})
    assert st == 200 and len(page2["webhooks"]) == 1 and "next" not in page2
    ids = [f["id"] for f in page1["webhooks"] + page2["webhooks"]]
    assert set(ids) == receiver.ids()
    # another app sees none of them
    receiver.answer = lambda req: web.Response(text="ok")
    before = len(receiver.got)
    st, body = await api.post("/webhooks/replay", {"ids": ids[:1]})
    assert st == 200 and body["replayed"] == 1, body
    await await_for(lambda: _count(receiver, before + 1), timeout=30)
    again = receiver.got[before]
    assert again["headers"]["X-Webhook-Id"] == ids[0]
    assert again["headers"]["X-Webhook-Attempt"] == "1"
    st, body = await api.post("/webhooks/replay", {"since": "2020-01-01T00:00:00Z"})
    assert st == 200 and body["replayed"] == 2, body
    await await_for(lambda: _count(receiver, before + 3), timeout=30)
    await await_for(lambda: _empty(pool), timeout=10)
    st, body = await api.get("/webhooks/failed")
    assert st == 200 and body["webhooks"] == []
    st, body = await api.post("/webhooks/replay", {"ids": ["nope"]})
    assert st == 400 and "ids[0]" in body["message"]
    st, body = await api.post("/webhooks/replay", {})
    assert st == 400


async def test_worker_killed_mid_delivery_loses_nothing(api: Api, pool, receiver, start_worker):
    receiver.delay = 0.3
    await api.patch("/app", {"webhook_url": receiver.url, "webhook_rate_limit": 0})
    n = 300
    await add_events(pool, api.creds.app_id, [ev("message.new", None, i) for i in range(n)])
    w = start_worker(webhook_timeout_s=1.0)
    await await_for(lambda: _count(receiver, 10), timeout=30)
    w.send_signal(signal.SIGKILL)
    w.wait(10)
    got_before = len(receiver.ids())
    assert got_before < n
    receiver.delay = 0
    start_worker(webhook_timeout_s=1.0)
    await await_for(lambda: _ids(receiver, n), timeout=60)
    assert sorted({g["event"]["n"] for g in receiver.got}) == list(range(n))
    await await_for(lambda: _empty(pool), timeout=20)


async def _ids(r: Receiver, n: int) -> bool:
    return len(r.ids()) >= n


async def test_receiver_rate_limit_paces_requests(api: Api, pool, receiver, start_worker):
    await api.patch("/app", {"webhook_url": receiver.url, "webhook_rate_limit": 20})
    await add_events(pool, api.creds.app_id, [ev("message.new", None, i) for i in range(40)])
    start_worker()
    await await_for(lambda: _count(receiver, 40), timeout=30)
    span = receiver.got[-1]["at"] - receiver.got[0]["at"]
    assert span >= 1.5, span


async def test_pending_deliveries_follow_a_changed_url(api: Api, pool, receiver, start_worker):
    gone = Receiver()  # never started
    await api.patch("/app", {"webhook_url": gone.url})
    await add_events(pool, api.creds.app_id, [ev("message.new", None, i) for i in range(5)])
    start_worker()

    async def tried() -> bool:
        return bool(await pool.fetchval("SELECT count(*) FROM webhook_deliveries WHERE attempt >= 1"
                                        " AND last_error IS NOT NULL"))

    await await_for(tried, timeout=30)
    await api.patch("/app", {"webhook_url": receiver.url})
    await await_for(lambda: _ids(receiver, 5), timeout=30)


async def test_webhooks_trickle_while_a_fan_out_writes(api: Api, pool, receiver: Receiver, start_worker,
                                                       settings):
    """While campaign batches mark the queue busy (broadcaster.pressure), delivery yields to
    them but never stops: every event still arrives, in order, once."""
    from redis.asyncio import Redis

    from broadcaster import pressure

    st, body = await api.patch("/app", {"webhook_url": receiver.url})
    assert st == 200, body
    redis = Redis.from_url(settings.redis_url)
    await pressure.mark_busy(redis, settings.queue_name, api.creds.app_id)
    n = 1200  # more than two trickle batches
    await add_events(pool, api.creds.app_id, [ev("campaign.started", "c1"),
                                              *(ev("message.new", "c1", i) for i in range(n))])
    start_worker()
    busy = pressure.Busy(redis, settings.queue_name)
    seen_busy = False
    deadline = time.monotonic() + 60
    while len(receiver.got) < n + 1 and time.monotonic() < deadline:
        await pressure.mark_busy(redis, settings.queue_name, api.creds.app_id)  # as running batches would
        seen_busy = seen_busy or api.creds.app_id in await busy()
        await asyncio.sleep(0.2)
    await redis.aclose()
    assert seen_busy
    assert len(receiver.got) == n + 1 and len(receiver.ids()) == n + 1
    assert receiver.got[0]["event"]["type"] == "campaign.started"
    assert sorted(g["event"]["n"] for g in receiver.got[1:]) == list(range(n))

"""Delivery that fits the receiver (real worker processes, real receivers): a plain
`http.server` receiver gets a 10,000-recipient campaign on the first attempt; retries of one
event never overlap; one app's slow receiver does not delay another app's events (a receiver
down for 5 minutes: tests/test_webhook_outage.py)."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import psutil
import pytest
from aiohttp import web

from broadcaster.plainreceiver import PlainReceiver
from tests.helpers import Api, await_for
from tests.test_webhook_delivery import Receiver, add_events, ev


async def _users(api: Api, n: int) -> list[str]:
    ids = [f"u{i:05d}" for i in range(n)]
    for part in (ids[:5000], ids[5000:], ["boss"]):
        if part:
            st, body = await api.post("/users", {"users": {i: {"id": i, "name": i} for i in part}})
            assert st in (200, 201), body
    return ids


def _cpu(p: psutil.Process) -> float:
    t = p.cpu_times()
    return float(t.user + t.system)


async def _rows(pool: Any) -> list[dict[str, Any]]:
    """What is left in the delivery table, grouped: the diagnosis when an event is late."""
    rows = await pool.fetch(
        "SELECT state, held, attempt, last_error, count(*) AS n, min(next_at - now()) AS due_in"
        " FROM webhook_deliveries GROUP BY 1, 2, 3, 4 ORDER BY 5 DESC LIMIT 20")
    outbox_n = await pool.fetchval("SELECT count(*) FROM outbox")
    return [{"outbox": outbox_n}, *[dict(r) for r in rows]]


# A bound the issue names (campaign.completed within 60 s of completion): run alone. Nearly
# every event is delivered after completion (fan-out first), and the drain is CPU-bound in
# both the receiver (this process, ~0.55 ms of CPU a request) and the worker: beside other
# test processes (load 9.9) each got 0.29 cores and 20,002 events drained at 531/s.
@pytest.mark.exclusive
async def test_plain_http_server_gets_a_10k_campaign_on_first_attempts(api: Api, pool, start_worker) -> None:
    recv = PlainReceiver().start()
    try:
        st, body = await api.patch("/app", {"webhook_url": recv.url, "webhook_rate_limit": 0})
        assert st == 200, body
        ids = await _users(api, 10_000)
        worker = psutil.Process(start_worker().pid)
        st, body = await api.post("/campaigns", {
            "id": "big", "sender_id": "boss", "user_ids": ids, "message_template": {"text": "Hi"},
            "create_channels": True, "channel_template": {"type": "messaging"}})
        assert st == 201, body
        st, body = await api.post("/campaigns/big/start")
        assert st == 200, body

        async def completed() -> bool:
            st, body = await api.get("/campaigns/big")
            return body["campaign"]["status"] == "completed"

        await await_for(completed, timeout=120, interval=0.2)
        done_at = time.monotonic()
        at_done = len(recv.snapshot())
        cpu0 = _cpu(worker), _cpu(psutil.Process())

        async def all_in() -> bool:
            return any(h.type == "campaign.completed" for h in recv.snapshot())

        try:
            await await_for(all_in, timeout=90, interval=0.2)
        except AssertionError as e:
            raise AssertionError(f"{e}: receiver {recv.summary()}, rows {await _rows(pool)}") from None
        hits = recv.snapshot()
        last = hits[-1]
        # the drain after completion, the figure to look at when the bound is missed
        cpu1 = _cpu(worker), _cpu(psutil.Process())
        wall = max(0.001, last.at - done_at)
        drain = {"at_completion": at_done, "load": round(os.getloadavg()[0], 1),
                 "worker_cores": round((cpu1[0] - cpu0[0]) / wall, 2),  # sending, routing, recording
                 "receiver_cores": round((cpu1[1] - cpu0[1]) / wall, 2),  # this process: the receiver
 "after": len(hits) - at_done,
                 "per_s": round((len(hits) - at_done) / max(0.001, last.at - done_at)),
                 "first_hit_s_before_completion": round(done_at - hits[0].at, 1),
                 "row_updates": await pool.fetchval(
                     "SELECT n_tup_upd FROM pg_stat_user_tables WHERE relname = 'webhook_deliveries'")}
        print("plain receiver drain", drain)
        assert last.type == "campaign.completed"
        assert last.at - done_at <= 60, (last.at - done_at, drain)
        assert len(hits) == 20_002, recv.summary()  # started, 10,000 x (channel, message), completed
        assert {h.attempt for h in hits} == {1}, recv.summary()
        assert len({h.webhook_id for h in hits}) == 20_002
        assert hits[0].type == "campaign.started"
    finally:
        recv.stop()


async def test_500_twice_then_ok_attempts_in_order_never_overlapping(api: Api, pool, start_worker) -> None:
    recv = Receiver()
    seen: dict[str, int] = {}
    in_flight: set[str] = set()
    overlaps: list[str] = []
    order: dict[str, list[int]] = {}

    async def handle(request: web.Request) -> web.Response:
        wid = request.headers["X-Webhook-Id"]
        if wid in in_flight:
            overlaps.append(wid)
        in_flight.add(wid)
        try:
            order.setdefault(wid, []).append(int(request.headers["X-Webhook-Attempt"]))
            await request.read()
            seen[wid] = seen.get(wid, 0) + 1
            await asyncio.sleep(0.01)
            return web.Response(status=500 if seen[wid] <= 2 else 200)
        finally:
            in_flight.discard(wid)

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", recv.port).start()
    try:
        await api.patch("/app", {"webhook_url": recv.url, "webhook_rate_limit": 0})
        n = 300
        await add_events(pool, api.creds.app_id, [ev("message.new", None, i) for i in range(n)])
        start_worker()

        async def all_done() -> bool:
            return len(order) == n and all(len(v) >= 3 for v in order.values())

        await await_for(all_done, timeout=90, interval=0.1)
        assert overlaps == []
        assert all(v == [1, 2, 3] for v in order.values()), [v for v in order.values() if v != [1, 2, 3]][:5]
    finally:
        await runner.cleanup()


async def _ids(r: Receiver, n: int) -> bool:
    return len(r.ids()) >= n


@pytest.mark.exclusive  # a wall-clock bound of the issue: run alone (tests/exclusive.py)
async def test_slow_receiver_of_one_app_does_not_delay_another(api: Api, other_api: Api, pool,
                                                              start_worker) -> None:
    slow, fast = Receiver(), Receiver()
    slow.delay = 2.0
    await slow.start()
    await fast.start()
    try:
        await api.patch("/app", {"webhook_url": slow.url, "webhook_rate_limit": 0})
        await other_api.patch("/app", {"webhook_url": fast.url, "webhook_rate_limit": 0})
        await add_events(pool, api.creds.app_id, [ev("message.new", "big", i) for i in range(2000)])
        start_worker()
        await await_for(lambda: _count(slow, 4), timeout=30)
        for round_ in range(3):  # the other app's campaign messages, written as a batch writes them
            before = len(fast.got)
            t0 = time.monotonic()
            await add_events(pool, other_api.creds.app_id,
                             [ev("campaign.started", f"b{round_}"),
                              *(ev("message.new", f"b{round_}", i) for i in range(50)),
                              ev("campaign.completed", f"b{round_}")])
            await await_for(lambda b=before: _count(fast, b + 52), timeout=10, interval=0.02)
            took = fast.got[-1]["at"] - t0
            assert took <= 2.0, took
        assert len(slow.got) < 2000  # its backlog was still there all along
    finally:
        await slow.stop()
        await fast.stop()


async def _count(r: Receiver, n: int) -> Any:
    return len(r.got) >= n

"""The click outbox (issue 17): `broadcaster serve` SIGKILLed right after answering a batch of
redirects, and again while redirects are in flight; after a new API process starts, every
answered click is counted exactly once (stats, the click log and the ledger agree)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from broadcaster.devstack import free_port, stop_processes
from broadcaster.settings import Settings
from tests.helpers import Api, await_for, seed_everyone
from tests.test_conversions import stats

TOKEN = re.compile(r"/c/([A-Za-z0-9_-]+)")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # The in-process API of the fixtures appends nothing here and must not drain either:
    # which process applies the outbox is the point of the test.
    return settings.with_(click_drainer=False)


@pytest.fixture
def serve(settings: Settings) -> Iterator[Any]:
    procs: list[subprocess.Popen[bytes]] = []

    async def start(*, drainer: bool) -> tuple[subprocess.Popen[bytes], str]:
        port = free_port()
        env = {**os.environ, **settings.with_(port=port, click_drainer=drainer).to_env()}
        p = subprocess.Popen([sys.executable, "-m", "broadcaster", "serve"], env=env)
        procs.append(p)
        base = f"http://127.0.0.1:{port}"

        async def up() -> bool:
            try:
                async with aiohttp.ClientSession() as s, s.get(f"{base}/healthz") as r:
                    return r.status == 200
            except aiohttp.ClientError:
                return False

        await await_for(up, timeout=60)
        return p, base

    yield start
    stop_processes(procs, 10)


async def _follow(s: aiohttp.ClientSession, base: str, tok: str) -> int:
    async with s.get(f"{base}/c/{tok}", allow_redirects=False) as r:
        await r.read()
        return r.status


async def test_answered_clicks_survive_sigkill_exactly_once(
    api: Api, pool: Any, start_worker: Any, serve: Any,
) -> None:
    n = 300
    await seed_everyone(api, pool, n)
    st, body = await api.post("/campaigns", {
        "id": "k", "sender_id": "boss", "segment_ids": ["everyone"], "skip_webhook": True, "track_clicks": True,
        "message_template": {"text": "Hi {{ receiver.name }} https://shop.example/{{ receiver.id }} https://b.example"},
        "create_channels": True, "channel_template": {"type": "messaging"}})
    assert st == 201, body
    start_worker()
    st, body = await api.post("/campaigns/k/start")
    assert st == 200, body

    async def completed() -> bool:
        return bool((await api.get("/campaigns/k"))[1]["campaign"]["status"] == "completed")

    await await_for(completed, timeout=90)
    toks = [TOKEN.findall(r["text"]) for r in await pool.fetch(
        "SELECT text FROM messages WHERE campaign_id = 'k' ORDER BY id")]
    assert len(toks) == n and all(len(t) == 2 for t in toks)
    # every recipient's first link, and a second click on it for a third of them
    first_batch = [t[0] for t in toks] + [t[0] for t in toks[: n // 3]]

    # 1. An API that appends but does not drain, killed right after its last 302.
    p1, base1 = await serve(drainer=False)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=32)) as s:
        got = await asyncio.gather(*(_follow(s, base1, t) for t in first_batch))
    p1.send_signal(signal.SIGKILL)
    p1.wait()
    assert got == [302] * len(first_batch)
    answered = len(first_batch)
    assert await pool.fetchval("SELECT count(*) FROM click_outbox") == answered  # durable, not yet counted
    assert (await stats(api, "k"))["stats_clicks"] == 0

    # 2. A draining API killed while redirects (second links) are in flight.
    p2, base2 = await serve(drainer=True)
    fired = [t[1] for t in toks]
    ok2 = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=16)) as s:

        async def one(tok: str) -> None:
            nonlocal ok2
            try:
                if await _follow(s, base2, tok) == 302:
                    ok2 += 1
                    if ok2 == n // 2:
                        p2.send_signal(signal.SIGKILL)
            except aiohttp.ClientError:  # the process died under this request: not answered
                pass

        await asyncio.gather(*(one(t) for t in fired))
    p2.wait()
    assert n // 2 <= ok2 < len(fired), ok2

    # 3. A new API drains what the killed ones left; nothing is counted twice.
    await serve(drainer=True)

    async def drained() -> bool:
        return bool(await pool.fetchval("SELECT count(*) FROM click_outbox") == 0)

    await await_for(drained, timeout=60)
    s = await stats(api, "k")
    logged = await pool.fetchrow(
        "SELECT count(*) AS clicks, count(*) FILTER (WHERE link_no = 0) AS first_links,"
        " count(*) FILTER (WHERE first) AS firsts FROM campaign_clicks WHERE campaign_id = 'k'")
    assert logged["first_links"] == answered  # every answered click of the first batch, once
    assert ok2 <= logged["clicks"] - answered <= len(fired)  # answered ones at least, never more than sent
    assert s["stats_clicks"] == logged["clicks"]
    clicked = await pool.fetchval(
        "SELECT count(*) FROM campaign_recipients WHERE campaign_id = 'k' AND clicked_at IS NOT NULL")
    assert s["stats_users_clicked"] == clicked == logged["firsts"] == n

"""PostgreSQL down while clicks arrive (issue 17, SPEC 5C/9): a redirect whose click cannot be
made durable answers 503 in the error shape (never a 302), and once PostgreSQL is back every
click that got a 302 is counted exactly once: stats = click log = ledger.

`broadcaster serve` and `broadcaster worker` run on a PostgreSQL of their own
(tests/test_faults.py's stack), crashed with `pg_ctl stop -m immediate` and restarted. Link 0
of each message is followed in phases that never overlap the crash (exact counts); link 1 is
followed by a stream that runs through the crash (a click whose append was in flight when the
server died may be durable without having been answered: at least the answered ones, at most
the sent ones)."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import aiohttp

from tests import test_faults
from tests.helpers import await_for
from tests.test_faults import Http, Stack, _db, _ready, _users

stack = test_faults.stack  # its fixtures: a PostgreSQL and a Redis this test may crash
http = test_faults.http

N = 200
TOKEN = re.compile(r"/c/([A-Za-z0-9_-]+)")


async def _follow(s: aiohttp.ClientSession, base: str, tok: str) -> tuple[int, dict[str, Any] | None]:
    async with s.get(f"{base}/c/{tok}", allow_redirects=False,
                     timeout=aiohttp.ClientTimeout(total=30)) as r:
        body = await r.json() if r.status != 302 else None
        return r.status, body


async def _campaign(stack: Stack, http: Http) -> list[list[str]]:
    await _users(stack, N, 0)
    st, body = await http.call("POST", "/segments", {"id": "everyone", "type": "user", "all_users": True})
    assert st in (200, 201), body
    st, body = await http.call("POST", "/campaigns", {
        "id": "k", "sender_id": "boss", "segment_ids": ["everyone"], "skip_webhook": True, "track_clicks": True,
        "message_template": {"text": "Hi {{ receiver.name }} https://shop.example/{{ receiver.id }} https://b.example"},
        "create_channels": True, "channel_template": {"type": "messaging"}})
    assert st == 201, body
    st, body = await http.call("POST", "/campaigns/k/start")
    assert st == 200, body

    async def completed() -> bool:
        s = await http.stats("k")
        return s is not None and s["status"] == "completed"

    await await_for(completed, timeout=90)
    rows = await _db(stack, "SELECT text FROM messages WHERE campaign_id = 'k' ORDER BY id")
    toks = [TOKEN.findall(r["text"]) for r in rows]
    assert len(toks) == N and all(len(t) == 2 for t in toks)
    return toks


async def test_redirects_answer_503_while_postgres_is_down_and_answered_clicks_count_once(
    stack: Stack, http: Http,
) -> None:
    stack.start("api", "serve")
    stack.start("worker", "worker")
    await await_for(lambda: _ready(http), timeout=60)
    toks = await _campaign(stack, http)
    base = stack.url
    link0 = {0: 0}  # 302s of link 0: each of them must be counted exactly once
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=16)) as s:
        # 1. PostgreSQL up: every click is answered 302.
        got = await asyncio.gather(*(_follow(s, base, t[0]) for t in toks[: N // 2]))
        assert [st for st, _ in got] == [302] * (N // 2)
        link0[0] += N // 2

        # 2. A stream on link 1 runs through the crash below; the statuses it saw are kept.
        stream: list[int] = []
        at_crash: list[int] = []  # len(stream) when PostgreSQL went down

        async def run_stream() -> None:
            i = 0
            while not at_crash or len(stream) < at_crash[0] + 40:
                try:
                    stream.append((await _follow(s, base, toks[i % N][1]))[0])
                except aiohttp.ClientError:  # the request died with its connection: not answered
                    stream.append(0)
                i += 1

        streaming = [asyncio.create_task(run_stream()) for _ in range(4)]
        await await_for(lambda: _async(len(stream) >= 40), timeout=60)
        stack.pg.crash()
        at_crash.append(len(stream))
        await asyncio.gather(*streaming)

        # 3. PostgreSQL down: no redirect is a 302, each is a 503 in the error shape.
        got = await asyncio.gather(*(_follow(s, base, t[0]) for t in toks[N // 2:]))
        assert {st for st, _ in got} == {503}, got
        for _, body in got:
            assert body is not None and body["code"] == 80 and body["StatusCode"] == 503, body
            assert "database" in body["message"] and body["duration"].endswith("ms"), body

        # 4. PostgreSQL back: redirects recover by themselves and all of them are 302 again.
        stack.pg.restart()

        async def redirects() -> bool:
            st, _ = await _follow(s, base, toks[0][0])
            if st == 302:
                link0[0] += 1
            return st == 302

        await await_for(redirects, timeout=60, interval=0.2)
        got = await asyncio.gather(*(_follow(s, base, t[0]) for t in toks[N // 2:]))
        assert [st for st, _ in got] == [302] * (N - N // 2)
        link0[0] += N - N // 2

    assert set(stream) <= {0, 302, 503}, stream
    assert 503 in stream[-40:] and 302 in stream, stream  # the stream saw both sides of the crash

    async def drained() -> bool:
        return bool((await _db(stack, "SELECT count(*) FROM click_outbox"))[0][0] == 0)

    await await_for(drained, timeout=60)
    logged = (await _db(stack,
        "SELECT count(*) FILTER (WHERE link_no = 0) AS link0, count(*) FILTER (WHERE link_no = 1) AS link1,"
        " count(*) AS clicks, count(*) FILTER (WHERE first) AS firsts FROM campaign_clicks"
        " WHERE campaign_id = 'k'"))[0]
    assert logged["link0"] == link0[0]  # every answered click, once; none of the 503s
    assert stream.count(302) <= logged["link1"] <= len(stream)
    clicked = (await _db(stack, "SELECT count(*) FROM campaign_recipients"
                         " WHERE campaign_id = 'k' AND clicked_at IS NOT NULL"))[0][0]
    stats = await http.stats("k")
    assert stats is not None
    assert stats["stats_clicks"] == logged["clicks"], (stats, dict(logged))
    assert stats["stats_users_clicked"] == clicked == logged["firsts"] == N, (stats, dict(logged))
    assert {n: p.poll() for n, p in stack.procs.items()} == {"api": None, "worker": None}, stack.logs()


async def _async(v: bool) -> bool:
    return v

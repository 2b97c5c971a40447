"""The fan-out engine under real failure: SIGKILLed workers, pause/resume, stop, two workers.
Each test asserts exactly one message per recipient and stats equal to the ledger."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from tests.helpers import Api


async def setup(api: Api, pool: Any, n: int, cid: str) -> None:
    await pool.execute(
        "INSERT INTO users (app_id, id, name) SELECT $1, 'r' || lpad(i::text, 6, '0'), 'R' || i"
        " FROM generate_series(1, $2) i", api.creds.app_id, n,
    )
    await pool.execute("INSERT INTO users (app_id, id, name) VALUES ($1, 'boss', 'Boss')", api.creds.app_id)
    st, body = await api.post("/segments", {"id": "everyone", "type": "user", "all_users": True})
    assert st in (200, 201), body
    st, body = await api.post("/campaigns", {
        "id": cid, "sender_id": "boss", "segment_ids": ["everyone"], "skip_webhook": True,
        "message_template": {"text": "Hello {{ receiver.name }}"}, "create_channels": True,
        "channel_template": {"type": "messaging"},
    })
    assert st == 201, body


async def stats(api: Api, cid: str) -> dict[str, Any]:
    st, body = await api.get(f"/campaigns/{cid}")
    assert st == 200, body
    return {"status": body["campaign"]["status"], **body["campaign"]["stats"]}


async def wait(api: Api, cid: str, pred: Any, timeout: float = 60) -> dict[str, Any]:
    for _ in range(int(timeout / 0.05)):
        s = await stats(api, cid)
        if pred(s):
            return s
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out: {s}")


async def check_exactly_once(api: Api, pool: Any, cid: str, n: int) -> None:
    per = await pool.fetchrow(
        "SELECT count(*) AS msgs, count(DISTINCT cid) AS chans, max(c) AS most FROM"
        " (SELECT cid, count(*) OVER (PARTITION BY cid) AS c FROM messages WHERE campaign_id = $1) x", cid,
    )
    led = await pool.fetchval(
        "SELECT count(*) FROM campaign_recipients WHERE campaign_id = $1 AND status = 'sent'", cid)
    s = await stats(api, cid)
    assert per["msgs"] == per["chans"] == led == s["stats_messages_sent"], (dict(per), led, s)
    assert per["most"] == 1
    members = await pool.fetchval("SELECT count(*) FROM members")
    assert members == 2 * per["chans"]
    if s["status"] == "completed":
        assert led == n == s["stats_recipients_total"] == s["stats_channels_created"]


async def test_sigkill_mid_campaign_then_another_worker(api: Api, pool: Any, start_worker: Any) -> None:
    n = 30_000
    await setup(api, pool, n, "crash")
    w1 = start_worker(batch_size=1000)
    await api.post("/campaigns/crash/start")
    await wait(api, "crash", lambda s: s["stats_messages_sent"] >= 3000)
    w1.send_signal(signal.SIGKILL)
    w1.wait()
    mid = await stats(api, "crash")
    assert mid["status"] == "in_progress" and mid["stats_messages_sent"] < n, mid
    start_worker(batch_size=1000)
    await wait(api, "crash", lambda s: s["status"] == "completed", timeout=90)
    await check_exactly_once(api, pool, "crash", n)


async def test_pause_resume_and_stop(api: Api, pool: Any, start_worker: Any) -> None:
    n = 8_000
    await setup(api, pool, n, "pr")
    start_worker(batch_size=200)
    await pool.execute("UPDATE apps SET settings = settings || '{\"campaign_send_rate\": 2000}'")
    await api.post("/campaigns/pr/start")
    await wait(api, "pr", lambda s: s["stats_messages_sent"] > 0)
    st, body = await api.post("/campaigns/pr/pause")
    assert st == 200 and body["campaign"]["status"] == "paused"
    frozen = await pool.fetchval("SELECT count(*) FROM messages")
    await asyncio.sleep(1.0)
    assert await pool.fetchval("SELECT count(*) FROM messages") == frozen
    assert frozen < n
    st, body = await api.post("/campaigns/pr/resume")
    assert st == 200 and body["campaign"]["status"] == "in_progress"
    await wait(api, "pr", lambda s: s["stats_messages_sent"] > frozen)
    st, body = await api.post("/campaigns/pr/stop")
    assert st == 200 and body["campaign"]["status"] == "stopped"
    at_stop = await pool.fetchval("SELECT count(*) FROM messages")
    await asyncio.sleep(1.0)
    assert await pool.fetchval("SELECT count(*) FROM messages") == at_stop < n
    await check_exactly_once(api, pool, "pr", n)
    s = await stats(api, "pr")
    assert 0 < s["stats_send_rate"] <= 2000 * 1.2, s


async def test_two_workers_share_batches(api: Api, pool: Any, start_worker: Any) -> None:
    n = 6_000
    await setup(api, pool, n, "two")
    start_worker(batch_size=300)
    start_worker(batch_size=300)
    await api.post("/campaigns/two/start")
    await wait(api, "two", lambda s: s["status"] == "completed")
    await check_exactly_once(api, pool, "two", n)

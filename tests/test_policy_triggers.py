"""Triggered campaigns and delivery policy (SPEC 5A/5B): segment_ids restrict who can be
triggered, events during a pause are sent after resume, user events are matched by a job
right after the write, and frequency caps hold across a one-time and a triggered campaign."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from tests.helpers import Api, await_for
from tests.test_triggered import create, sent_to, setup, wait_sent


async def test_segment_ids_restrict_who_can_be_triggered(api: Api, pool: Any, start_worker: Any) -> None:
    await setup(api, pool, 10)
    st, body = await api.post("/segments", {"id": "vip", "type": "user", "name": "vip"})
    assert st in (200, 201), body
    assert (await api.post("/segments/vip/addtargets", {"target_ids": ["u0001", "u0002"]}))[0] in (200, 201)
    st, body = await api.post("/segments", {"id": "nl", "type": "user", "filter": {"country": "NL"}})
    assert st in (200, 201), body
    await pool.execute("UPDATE users SET custom = '{\"country\": \"NL\"}' WHERE id = 'u0003'")
    await create(api, "vip-thanks", {"event": "order.completed"}, segment_ids=["vip", "nl"])
    start_worker()
    evs = [{"id": f"e{i}", "type": "order.completed", "user_id": f"u{i:04d}"} for i in range(1, 7)]
    assert (await api.post("/events", {"events": evs}))[0] == 201
    assert await wait_sent(pool, "vip-thanks", 3) == {"u0001": 1, "u0002": 1, "u0003": 1}

    async def processed() -> bool:
        return not await pool.fetchval("SELECT count(*) FROM events WHERE NOT processed")
    await await_for(processed)
    assert await pool.fetchval("SELECT times_triggered FROM campaigns WHERE id = 'vip-thanks'") == 3
    assert await sent_to(pool, "vip-thanks") == {"u0001": 1, "u0002": 1, "u0003": 1}


async def test_events_during_a_pause_are_sent_after_resume(api: Api, pool: Any, start_worker: Any) -> None:
    await setup(api, pool, 5)
    await create(api, "t", {"event": "order.completed"})
    start_worker()
    assert (await api.post("/campaigns/t/pause"))[0] == 200
    evs = [{"id": f"p{i}", "type": "order.completed", "user_id": f"u{i:04d}"} for i in range(1, 4)]
    assert (await api.post("/events", {"events": evs}))[0] == 201

    async def matched() -> bool:
        return await pool.fetchval("SELECT count(*) FROM campaign_triggers WHERE campaign_id = 't'") == 3
    await await_for(matched)
    assert await sent_to(pool, "t") == {}  # nothing is sent while paused
    assert (await api.post("/campaigns/t/resume"))[0] == 200
    assert await wait_sent(pool, "t", 3) == {"u0001": 1, "u0002": 1, "u0003": 1}


async def test_a_user_created_trigger_is_matched_by_a_job_queued_by_the_upsert(
    api: Api, pool: Any, start_worker: Any, settings: Any,
) -> None:
    await setup(api, pool, 1)
    await create(api, "welcome", {"event": "user.created"})
    r = Redis.from_url(settings.redis_url)
    try:
        before = {k for k in await r.zrange(settings.queue_name, 0, -1) if k.startswith(b"tev:")}
        assert (await api.post("/users", {"users": {"newbie": {"id": "newbie", "name": "New"}}}))[0] in (200, 201)
        after = {k for k in await r.zrange(settings.queue_name, 0, -1) if k.startswith(b"tev:")}
    finally:
        await r.aclose()
    assert len(after - before) == 1  # matched now by a job, not only by the next 1 s tick
    start_worker()
    assert await wait_sent(pool, "welcome", 1) == {"newbie": 1}


async def test_a_cap_holds_across_a_one_time_and_a_triggered_campaign(api: Api, pool: Any, start_worker: Any) -> None:
    await setup(api, pool, 4)
    assert (await api.patch("/app", {"frequency_caps": [{"max": 1, "period": "24h"}]}))[0] == 200
    st, body = await api.post("/campaigns", {
        "id": "news", "sender_id": "shop", "user_ids": ["u0001", "u0002"], "skip_webhook": True,
        "create_channels": True, "channel_template": {"type": "messaging"}, "message_template": {"text": "news"}})
    assert st == 201, body
    assert (await api.post("/campaigns/news/start"))[0] == 200
    start_worker()
    assert await wait_sent(pool, "news", 2) == {"u0001": 1, "u0002": 1}
    await create(api, "thanks", {"event": "order.completed"})
    evs = [{"id": f"c{i}", "type": "order.completed", "user_id": f"u{i:04d}"} for i in range(1, 5)]
    assert (await api.post("/events", {"events": evs}))[0] == 201
    assert await wait_sent(pool, "thanks", 2) == {"u0003": 1, "u0004": 1}

    async def capped() -> list[Any] | None:
        rows = await pool.fetch("SELECT target_id, error FROM campaign_recipients WHERE campaign_id = 'thanks'"
                                " AND status = 'skipped' ORDER BY target_id")
        return rows if len(rows) == 2 else None
    rows = await await_for(capped)
    assert [(r["target_id"], r["error"]) for r in rows] == [("u0001", "frequency_capped"), ("u0002", "frequency_capped")]

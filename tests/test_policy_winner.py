"""A/B with a winner under deferred quiet hours (SPEC 5B, 5C): test-audience recipients held
by quiet hours are sent their own variant when the quiet hours end, the wait starts only
after that, and the winner goes to the rest; each user gets one message."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from broadcaster.domain import variants
from tests.helpers import Api, assert_error, await_for
from tests.test_policy_timing import _held, _set_clock, _stop
from tests.test_winner import AB


async def test_winner_with_deferred_quiet_hours(api: Api, pool: Any, start_worker: Any) -> None:
    users = {f"r{i:03d}": {"id": f"r{i:03d}", **({"timezone": "Asia/Tokyo"} if i % 2 else {})} for i in range(200)}
    st, body = await api.post("/users", {"users": {"boss": {"id": "boss"}, **users}})
    assert st in (200, 201), body
    assert (await api.patch("/app", {"quiet_hours": {"start": "22:00", "end": "07:00"}}))[0] == 200
    today = datetime.now(UTC).date()
    eleven_pm = datetime(today.year, today.month, today.day, 23, tzinfo=UTC)  # 08:00 in Tokyo
    await _set_clock(pool, eleven_pm)
    st, body = await api.post("/campaigns", {
        "id": "wq", "sender_id": "boss", "user_ids": sorted(users), "skip_webhook": True,
        "message_template": {"text": "base", "variants": AB},
        "winner": {"metric": "read", "test_fraction": 0.3, "wait": "2s"},
        "create_channels": True, "channel_template": {"type": "messaging"}})
    assert st == 201, body
    assert (await api.post("/campaigns/wq/start"))[0] == 200
    test = {u for u in users if variants.in_test("wq", u, 0.3)}
    night = {u for u in test if "timezone" not in users[u]}  # UTC: inside the quiet hours
    assert night and test - night
    w = start_worker(batch_size=50)

    async def test_pass_held() -> bool:
        sent = {r[0] for r in await pool.fetch("SELECT target_id FROM campaign_recipients WHERE campaign_id = 'wq'")}
        return sent == test - night and set(await _held(pool, "wq")) == night
    await await_for(test_pass_held, timeout=60)
    _stop(w)
    # the test pass is not over while it holds anyone: no wait, no winner yet
    phase = await pool.fetchrow("SELECT winner_phase, winner_variant FROM campaigns WHERE id = 'wq'")
    assert phase["winner_phase"] is None and phase["winner_variant"] is None

    await _set_clock(pool, eleven_pm + timedelta(hours=8, seconds=60))  # 07:01 UTC: quiet hours over
    start_worker(batch_size=50)

    async def completed() -> dict[str, Any] | None:
        st, body = await api.get("/campaigns/wq")
        return body["campaign"] if body["campaign"]["status"] == "completed" else None
    camp = await await_for(completed, timeout=90)
    rows = await pool.fetch("SELECT target_id, variant_id, status FROM campaign_recipients WHERE campaign_id = 'wq'")
    assert len(rows) == 200 and all(r["status"] == "sent" for r in rows)
    won = camp["stats"]["winner"]["variant"]
    for r in rows:  # the test audience its own variant (the held ones too), the rest the winner
        want = variants.choose("wq", r["target_id"], AB) if r["target_id"] in test else won
        assert r["variant_id"] == want, (r["target_id"], r["target_id"] in night, r["variant_id"], want)
    assert await pool.fetchval("SELECT count(*) FROM messages WHERE campaign_id = 'wq'") == 200
    assert camp["stats"]["stats_messages_sent"] == 200 and camp["stats"]["progress"] == 1
    assert await _held(pool, "wq") == {}


async def test_send_in_local_time_with_a_winner_is_refused_naming_both(api: Api) -> None:
    assert (await api.post("/users", {"users": {"boss": {"id": "boss"}}}))[0] in (200, 201)
    st, err = await api.post("/campaigns", {
        "id": "wl", "sender_id": "boss", "user_ids": ["r1"], "send_in_local_time": True,
        "message_template": {"text": "base", "variants": AB},
        "winner": {"metric": "read", "test_fraction": 0.3, "wait": "1h"}})
    assert_error(st, err, 400, 4, "send_in_local_time", "winner", "local time")

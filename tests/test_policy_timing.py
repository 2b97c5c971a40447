"""Delivery policy (SPEC 5B) in time: send_in_local_time and quiet hours.

The policy's clock is PostgreSQL's now() shifted by the database setting
broadcaster.clock_offset (store/policy.NOW): a worker started after the setting changes sees
the new time, so the tests move the clock to the instants that matter instead of waiting."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from tests.helpers import Api, await_for


async def _set_clock(pool: Any, at: datetime) -> None:
    """New sessions see `at` as now (the running clock goes on from there)."""
    offset = int((at - datetime.now(UTC)).total_seconds())
    await pool.execute("DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET broadcaster.clock_offset = %L',"
                       f" current_database(), '{offset} s'); END $$")


def _stop(p: Any) -> None:
    p.terminate()
    p.wait(30)


async def _statuses(api: Api, cid: str) -> dict[str, tuple[str, str | None]]:
    st, body = await api.get(f"/campaigns/{cid}/recipients")
    assert st == 200, body
    return {r["target_id"]: (r["status"], r.get("error")) for r in body["recipients"]}


async def _held(pool: Any, cid: str) -> dict[str, datetime]:
    rows = await pool.fetch("SELECT target_id, due_at FROM campaign_held WHERE campaign_id = $1", cid)
    return {r["target_id"]: r["due_at"] for r in rows}


async def _status(api: Api, cid: str) -> str:
    return str((await api.get(f"/campaigns/{cid}"))[1]["campaign"]["status"])


async def test_users_in_three_timezones_receive_at_their_local_nine(api: Api, pool: Any, start_worker: Any) -> None:
    tokyo, ny = ZoneInfo("Asia/Tokyo"), ZoneInfo("America/New_York")
    assert (await api.patch("/app", {"default_timezone": "America/New_York"}))[0] == 200
    st, body = await api.post("/users", {"users": {
        "boss": {"id": "boss"}, "tok": {"id": "tok", "timezone": "Asia/Tokyo"}, "utc": {"id": "utc", "timezone": "UTC"},
        "ny": {"id": "ny"}, "bad": {"id": "bad", "timezone": "Not/A_Zone"}}})  # no/invalid zone: the app's
    assert st in (200, 201), body
    # the latest 09:00 in Tokyo that has passed: Tokyo's recipient is due at once
    local = datetime.now(tokyo)
    d: date = local.date() if local.hour >= 9 else local.date() - timedelta(days=1)
    nine = datetime(d.year, d.month, d.day, 9)
    t_tok, t_utc, t_ny = (nine.replace(tzinfo=z).astimezone(UTC) for z in (tokyo, UTC, ny))
    st, body = await api.post("/campaigns", {
        "id": "morning", "sender_id": "boss", "user_ids": ["tok", "utc", "ny", "bad"], "skip_webhook": True,
        "send_in_local_time": True, "create_channels": True, "channel_template": {"type": "messaging"},
        "message_template": {"text": "Good morning"}})
    assert st == 201, body
    await _set_clock(pool, t_tok + timedelta(seconds=60))
    st, body = await api.post("/campaigns/morning/start", {"scheduled_for": f"{d.isoformat()}T09:00:00Z"})
    assert st == 200, body
    # in progress from the earliest zone (Tokyo's 09:00, passed) on
    assert body["campaign"]["status"] == "in_progress", body
    assert body["campaign"]["scheduled_for"].startswith(t_tok.strftime("%Y-%m-%dT%H:%M:%S")), body

    w = start_worker()

    async def tokyo_sent() -> dict[str, Any] | None:
        s = await _statuses(api, "morning")
        return s if s["tok"] == ("sent", None) else None
    s = await await_for(tokyo_sent, timeout=60)
    assert s["utc"][0] == s["ny"][0] == s["bad"][0] == "pending", s
    assert await _held(pool, "morning") == {"utc": t_utc, "ny": t_ny, "bad": t_ny}
    assert await _status(api, "morning") == "in_progress"

    _stop(w)
    await _set_clock(pool, t_utc + timedelta(seconds=60))
    w = start_worker()

    async def utc_sent() -> dict[str, Any] | None:
        s = await _statuses(api, "morning")
        return s if s["utc"] == ("sent", None) else None
    s = await await_for(utc_sent, timeout=60)
    assert s["ny"][0] == s["bad"][0] == "pending", s
    assert await _status(api, "morning") == "in_progress"

    _stop(w)
    await _set_clock(pool, t_ny + timedelta(seconds=60))
    start_worker()

    async def completed() -> dict[str, Any] | None:
        st, b = await api.get("/campaigns/morning")
        return b["campaign"] if b["campaign"]["status"] == "completed" else None
    camp = await await_for(completed, timeout=60)
    assert camp["stats"]["stats_messages_sent"] == 4 and camp["stats"]["progress"] == 1.0, camp["stats"]
    assert set((await _statuses(api, "morning")).values()) == {("sent", None)}
    assert await _held(pool, "morning") == {}
    assert await pool.fetchval("SELECT count(*) FROM messages WHERE campaign_id = 'morning'") == 4


async def test_quiet_hours_defer_skip_and_ignore(api: Api, pool: Any, start_worker: Any) -> None:
    assert (await api.patch("/app", {"quiet_hours": {"start": "22:00", "end": "07:00"}}))[0] == 200
    st, body = await api.post("/users", {"users": {
        "boss": {"id": "boss"}, "night": {"id": "night"},  # no zone, no default: UTC
        "day": {"id": "day", "timezone": "Asia/Tokyo"}}})
    assert st in (200, 201), body
    today = datetime.now(UTC).date()
    eleven_pm = datetime(today.year, today.month, today.day, 23, tzinfo=UTC)  # 08:00 in Tokyo
    await _set_clock(pool, eleven_pm)
    for cid, mode in (("deferq", None), ("skipq", "skip"), ("loud", "ignore")):
        st, body = await api.post("/campaigns", {
            "id": cid, "sender_id": "boss", "user_ids": ["night", "day"], "skip_webhook": True,
            **({"quiet_hours": mode} if mode else {}), "create_channels": True,
            "channel_template": {"type": "messaging"}, "message_template": {"text": cid}})
        assert st == 201, body
        assert (await api.post(f"/campaigns/{cid}/start"))[0] == 200
    w = start_worker()

    async def settled() -> bool:
        return (await _status(api, "skipq") == await _status(api, "loud") == "completed"
                and (await _statuses(api, "deferq"))["day"][0] == "sent")
    await await_for(settled, timeout=60)
    assert await _statuses(api, "skipq") == {"night": ("skipped", "quiet_hours"), "day": ("sent", None)}
    assert await _statuses(api, "loud") == {"night": ("sent", None), "day": ("sent", None)}
    assert await _statuses(api, "deferq") == {"night": ("pending", None), "day": ("sent", None)}
    assert await _held(pool, "deferq") == {"night": eleven_pm + timedelta(hours=8)}  # 07:00 UTC
    st, body = await api.get("/campaigns/skipq")
    assert body["campaign"]["stats"]["stats_recipients_skipped"] == 1
    assert await _status(api, "deferq") == "in_progress"

    _stop(w)
    await _set_clock(pool, eleven_pm + timedelta(hours=8, seconds=60))
    start_worker()

    async def deferred_sent() -> bool:
        return await _status(api, "deferq") == "completed"
    await await_for(deferred_sent, timeout=60)
    assert await _statuses(api, "deferq") == {"night": ("sent", None), "day": ("sent", None)}


async def test_held_recipients_of_a_stopped_campaign_are_removed_when_it_stops(
    api: Api, pool: Any, start_worker: Any,
) -> None:
    assert (await api.patch("/app", {"quiet_hours": {"start": "22:00", "end": "07:00"}}))[0] == 200
    st, body = await api.post("/users", {"users": {"boss": {"id": "boss"}, "n1": {"id": "n1"}, "n2": {"id": "n2"}}})
    assert st in (200, 201), body
    today = datetime.now(UTC).date()
    await _set_clock(pool, datetime(today.year, today.month, today.day, 23, tzinfo=UTC))
    for cid in ("held", "other"):
        st, body = await api.post("/campaigns", {
            "id": cid, "sender_id": "boss", "user_ids": ["n1", "n2"], "skip_webhook": True, "create_channels": True,
            "channel_template": {"type": "messaging"}, "message_template": {"text": cid}})
        assert st == 201, body
        assert (await api.post(f"/campaigns/{cid}/start"))[0] == 200
    start_worker()

    async def both_held() -> bool:
        return len(await _held(pool, "held")) == len(await _held(pool, "other")) == 2
    await await_for(both_held, timeout=60)
    st, body = await api.post("/campaigns/held/stop")
    assert st == 200 and body["campaign"]["status"] == "stopped", body
    assert await _held(pool, "held") == {}
    assert set(await _held(pool, "other")) == {"n1", "n2"}  # another campaign's are kept
    assert await _statuses(api, "held") == {"n1": ("pending", None), "n2": ("pending", None)}

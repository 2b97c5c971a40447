"""Delivery policy (SPEC 5B): frequency caps across concurrent campaigns and workers, and the
app/campaign policy fields' validation."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import Api, assert_error, await_for


@pytest.fixture
def settings(settings: Any) -> Any:
    return settings.with_(batch_size=20)  # many small batches: the two campaigns interleave


async def _done(api: Api, cid: str) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        st, b = await api.get(f"/campaigns/{cid}")
        return b["campaign"] if b["campaign"]["status"] == "completed" else None
    return await await_for(check, timeout=120)  # type: ignore[no-any-return]


async def test_two_concurrent_campaigns_against_a_cap_of_one_a_day_send_each_user_one_message(
    api: Api, pool: Any, start_worker: Any,
) -> None:
    users = {f"u{i:03d}": {"id": f"u{i:03d}"} for i in range(300)}
    st, body = await api.post("/users", {"users": {"boss": {"id": "boss"}, **users}})
    assert st in (200, 201), body
    st, body = await api.patch("/app", {"frequency_caps": [{"max": 1, "period": "1d"}]})
    assert st == 200, body
    st, body = await api.get("/app")
    assert body["app"]["frequency_caps"] == [{"max": 1, "period": "1d"}], body
    for cid in ("a", "b"):
        st, body = await api.post("/campaigns", {
            "id": cid, "sender_id": "boss", "user_ids": sorted(users), "skip_webhook": True,
            "create_channels": True, "channel_template": {"type": "messaging"},
            "message_template": {"text": f"campaign {cid}"}})
        assert st == 201, body
    assert (await api.post("/campaigns/a/start"))[0] == 200
    assert (await api.post("/campaigns/b/start"))[0] == 200
    start_worker(worker_max_jobs=4)
    start_worker(worker_max_jobs=4)
    a, b = await _done(api, "a"), await _done(api, "b")

    per_user = await pool.fetch(
        "SELECT r.user_id, count(*) FILTER (WHERE r.status = 'sent') AS sent,"
        " count(*) FILTER (WHERE r.status = 'skipped' AND r.error = 'frequency_capped') AS capped"
        " FROM campaign_recipients r WHERE r.campaign_id IN ('a', 'b') GROUP BY r.user_id")
    assert len(per_user) == 300
    assert all(r["sent"] == 1 and r["capped"] == 1 for r in per_user), [dict(r) for r in per_user if r["sent"] != 1][:5]
    messages = await pool.fetchval(
        "SELECT count(*) FROM messages WHERE campaign_id IN ('a', 'b')")
    assert messages == 300
    sa, sb = a["stats"], b["stats"]
    assert sa["stats_messages_sent"] + sb["stats_messages_sent"] == 300
    assert sa["stats_recipients_skipped"] + sb["stats_recipients_skipped"] == 300
    st, body = await api.get("/campaigns/a/recipients", params={"status": "skipped", "limit": "1"})
    if body["recipients"]:
        assert body["recipients"][0]["error"] == "frequency_capped"

    # ignore_frequency_caps bypasses the cap (and its messages count against it afterwards)
    st, body = await api.post("/campaigns", {
        "id": "urgent", "sender_id": "boss", "user_ids": ["u000", "u001"], "skip_webhook": True,
        "ignore_frequency_caps": True, "create_channels": True, "channel_template": {"type": "messaging"},
        "message_template": {"text": "urgent"}})
    assert st == 201 and body["campaign"]["ignore_frequency_caps"] is True, body
    assert (await api.post("/campaigns/urgent/start"))[0] == 200
    assert (await _done(api, "urgent"))["stats"]["stats_messages_sent"] == 2
    sends = await pool.fetchval("SELECT count(capped_at) FROM campaign_recipients WHERE user_id = 'u000'")
    assert sends == 2
    assert await pool.fetchval("SELECT count(*) FROM policy_claims") == 0


async def test_policy_fields_are_validated_naming_the_field(api: Api) -> None:
    for patch, words in [
        ({"default_timezone": "Mars/Olympus"}, ("default_timezone",)),
        ({"quiet_hours": {"start": "25:00", "end": "07:00"}}, ("quiet_hours.start",)),
        ({"quiet_hours": {"start": "22:00", "end": "7am"}}, ("quiet_hours.end",)),
        ({"quiet_hours": {"start": "22:00", "end": "22:00"}}, ("quiet_hours.start",)),
        ({"frequency_caps": [{"max": 0, "period": "1d"}]}, ("frequency_caps[0].max",)),
        ({"frequency_caps": [{"max": 2, "period": "1w"}]}, ("frequency_caps[0].period",)),
        ({"frequency_caps": {"max": 2}}, ("frequency_caps",)),
    ]:
        st, body = await api.patch("/app", patch)
        assert_error(st, body, 400, 4, *words)
    st, body = await api.patch("/app", {"default_timezone": "Asia/Tokyo", "quiet_hours": {"start": "22:00", "end": "07:00"},
                                        "frequency_caps": [{"max": 3, "period": "7d"}, {"max": 1, "period": "12h"}]})
    assert st == 200, body
    st, body = await api.get("/app")
    assert body["app"]["default_timezone"] == "Asia/Tokyo"
    assert body["app"]["quiet_hours"] == {"start": "22:00", "end": "07:00"}
    assert (await api.patch("/app", {"quiet_hours": None}))[0] == 200
    assert (await api.get("/app"))[1]["app"]["quiet_hours"] is None

    assert (await api.post("/users", {"users": {"boss": {"id": "boss"}, "ann": {"id": "ann"}}}))[0] in (200, 201)
    base = {"sender_id": "boss", "user_ids": ["ann"], "message_template": {"text": "hi"}}
    for extra, words in [
        ({"quiet_hours": "later"}, ("quiet_hours",)),
        ({"send_in_local_time": "yes"}, ("send_in_local_time",)),
        ({"ignore_frequency_caps": 1}, ("ignore_frequency_caps",)),
    ]:
        st, body = await api.post("/campaigns", {**base, **extra})
        assert_error(st, body, 400, 4, *words)
    st, body = await api.post("/campaigns", {**base, "id": "loc", "send_in_local_time": True})
    assert st == 201 and body["campaign"]["send_in_local_time"] is True and body["campaign"]["quiet_hours"] == "defer"
    st, body = await api.post("/campaigns/loc/start")
    assert_error(st, body, 400, 4, "scheduled_for")


async def test_a_render_error_after_the_cap_check_does_not_count_against_the_cap(
    api: Api, pool: Any, start_worker: Any,
) -> None:
    users = {f"e{i}": {"id": f"e{i}", "d": 0 if i < 3 else 1} for i in range(6)}
    st, body = await api.post("/users", {"users": {"boss": {"id": "boss"}, **users}})
    assert st in (200, 201), body
    assert (await api.patch("/app", {"frequency_caps": [{"max": 1, "period": "1d"}]}))[0] == 200
    for cid, text in (("bad", "{{ 10 // receiver.d }} off"), ("good", "hello")):
        st, body = await api.post("/campaigns", {
            "id": cid, "sender_id": "boss", "user_ids": sorted(users), "skip_webhook": True,
            "create_channels": True, "channel_template": {"type": "messaging"}, "message_template": {"text": text}})
        assert st == 201, body
    start_worker()
    assert (await api.post("/campaigns/bad/start"))[0] == 200
    await _done(api, "bad")
    first = {r[0]: (r[1], r[2]) for r in await pool.fetch(
        "SELECT target_id, status, error FROM campaign_recipients WHERE campaign_id = 'bad'")}
    for i in range(3):  # division by zero (a loaded machine may add a template_budget error)
        assert first[f"e{i}"][0] == "errored" and "ZeroDivisionError" in first[f"e{i}"][1], first
    assert {u for u, (st, _) in first.items() if st == "sent"} <= {f"e{i}" for i in range(3, 6)}
    assert (await api.post("/campaigns/good/start"))[0] == 200
    await _done(api, "good")
    rows = await pool.fetch("SELECT target_id, status, error FROM campaign_recipients WHERE campaign_id = 'good'"
                            " ORDER BY target_id")
    # whoever errored in "bad" gets "good" as their first message today; the others are capped
    assert [(r[0], r[1], r[2]) for r in rows] == [
        (u, "sent", None) if first[u][0] == "errored" else (u, "skipped", "frequency_capped") for u in sorted(first)]
    sends = await pool.fetch("SELECT user_id, count(capped_at) AS n FROM campaign_recipients GROUP BY user_id")
    assert {r[0]: r[1] for r in sends} == {f"e{i}": 1 for i in range(6)}


async def test_a_deleted_campaigns_messages_still_count_against_the_cap(
    api: Api, pool: Any, start_worker: Any,
) -> None:
    users = {f"d{i}": {"id": f"d{i}"} for i in range(4)}
    st, body = await api.post("/users", {"users": {"boss": {"id": "boss"}, **users}})
    assert st in (200, 201), body
    assert (await api.patch("/app", {"frequency_caps": [{"max": 1, "period": "1d"}]}))[0] == 200
    for cid in ("old", "new"):
        st, body = await api.post("/campaigns", {
            "id": cid, "sender_id": "boss", "user_ids": sorted(users)[:3] if cid == "old" else sorted(users),
            "skip_webhook": True, "create_channels": True, "channel_template": {"type": "messaging"},
            "message_template": {"text": cid}})
        assert st == 201, body
    start_worker()
    assert (await api.post("/campaigns/old/start"))[0] == 200
    assert (await _done(api, "old"))["stats"]["stats_messages_sent"] == 3
    assert (await api.delete("/campaigns/old"))[0] == 200
    assert not await pool.fetchval("SELECT count(*) FROM campaign_recipients WHERE campaign_id = 'old'")
    kept = await pool.fetch("SELECT user_id FROM policy_kept ORDER BY user_id")
    assert [r[0] for r in kept] == ["d0", "d1", "d2"]
    assert (await api.post("/campaigns/new/start"))[0] == 200
    await _done(api, "new")
    rows = await pool.fetch("SELECT target_id, status, error FROM campaign_recipients WHERE campaign_id = 'new'"
                            " ORDER BY target_id")
    assert [tuple(r) for r in rows] == [("d0", "skipped", "frequency_capped"), ("d1", "skipped", "frequency_capped"),
                                        ("d2", "skipped", "frequency_capped"), ("d3", "sent", None)]

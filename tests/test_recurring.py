"""Recurring campaigns (SPEC 5A) against real workers: runs as child campaigns with their
own audience, ledger, stats and events; restarts between runs; pause, resume, stop, catch-up.

The clock is PostgreSQL's: the tick starts a run when the series' next_run_at <= now(), so a
test makes an occurrence due by moving next_run_at into the past (what the tick would see
when that instant arrives), and everything else is the production path."""

from __future__ import annotations

import signal
from datetime import UTC, datetime
from typing import Any

from broadcaster import timefmt
from broadcaster.domain import schedule
from tests.helpers import Api, assert_error, await_for

SCHEDULE = {"frequency": "daily", "time": "09:00", "timezone": "Europe/Amsterdam"}


async def setup(api: Api, pool: Any, n: int, cid: str, **extra: Any) -> dict[str, Any]:
    await pool.execute(
        "INSERT INTO users (app_id, id, name) SELECT $1, 'r' || lpad(i::text, 4, '0'), 'R' || i"
        " FROM generate_series(1, $2) i", api.creds.app_id, n)
    await pool.execute("INSERT INTO users (app_id, id, name) VALUES ($1, 'boss', 'Boss')", api.creds.app_id)
    st, body = await api.post("/segments", {"id": "everyone", "type": "user", "all_users": True})
    assert st in (200, 201), body
    # campaign.* events reach the outbox and, through the worker's pump, a delivery row each
    await pool.execute("UPDATE apps SET settings = settings || '{\"webhook_url\": \"http://127.0.0.1:9/h\"}'")
    st, body = await api.post("/campaigns", {
        "id": cid, "type": "recurring", "schedule": {**SCHEDULE, **extra}, "sender_id": "boss",
        "segment_ids": ["everyone"], "skip_webhook": True, "create_channels": True,
        "message_template": {"text": "Daily news for {{ receiver.name }}"}, "channel_template": {"type": "messaging"},
    })
    assert st == 201, body
    return body["campaign"]


async def get(api: Api, cid: str) -> dict[str, Any]:
    st, body = await api.get(f"/campaigns/{cid}")
    assert st == 200, body
    return body["campaign"]  # type: ignore[no-any-return]


async def make_due(pool: Any, cid: str, ago: str = "1 second") -> None:
    await pool.execute(f"UPDATE campaigns SET next_run_at = now() - interval '{ago}' WHERE id = $1", cid)


async def completed(api: Api, cid: str) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        st, body = await api.get(f"/campaigns/{cid}")
        return body["campaign"] if st == 200 and body["campaign"]["status"] == "completed" else None
    return await await_for(done, timeout=60)  # type: ignore[no-any-return]


async def exactly_once(pool: Any, run: str, n: int) -> None:
    r = await pool.fetchrow(
        "SELECT count(*) AS msgs, count(DISTINCT cid) AS chans FROM messages WHERE campaign_id = $1", run)
    sent = await pool.fetchval(
        "SELECT count(*) FROM campaign_recipients WHERE campaign_id = $1 AND status = 'sent'", run)
    assert r["msgs"] == r["chans"] == sent == n, (dict(r), sent, n)


async def test_two_runs_each_with_its_own_audience_ledger_and_events_across_a_restart(
    api: Api, pool: Any, start_worker: Any,
) -> None:
    await setup(api, pool, 40, "daily", max_runs=2)
    st, body = await api.post("/campaigns/daily/start")
    assert st == 200, body
    c = body["campaign"]
    assert c["status"] == "scheduled" and c["type"] == "recurring" and c["runs_started"] == 0
    expected = schedule.next_after(schedule.parse(SCHEDULE), timefmt.parse(c["updated_at"], "t"))
    assert c["next_run_at"] == timefmt.fmt(expected)

    w = start_worker()
    await make_due(pool, "daily")
    run1 = await completed(api, "daily-run-1")
    assert run1["parent_id"] == "daily" and run1["run_no"] == 1 and run1["type"] == "one_time"
    assert run1["stats"]["stats_recipients_total"] == 40
    await exactly_once(pool, "daily-run-1", 40)
    parent = await get(api, "daily")
    assert parent["status"] == "scheduled" and parent["runs_started"] == 1
    assert datetime.fromisoformat(parent["next_run_at"]) > datetime.now(UTC)  # the next real occurrence

    w.send_signal(signal.SIGKILL)
    w.wait()
    # run 2's audience is fixed at its own start: a user added now receives run 2 only
    await pool.execute("INSERT INTO users (app_id, id, name) VALUES ($1, 'r9999', 'Late')", api.creds.app_id)
    await make_due(pool, "daily")
    start_worker()
    run2 = await completed(api, "daily-run-2")
    assert run2["stats"]["stats_recipients_total"] == 41
    await exactly_once(pool, "daily-run-2", 41)
    await exactly_once(pool, "daily-run-1", 40)
    assert not await pool.fetchval("SELECT count(*) FROM campaign_recipients WHERE campaign_id = 'daily-run-1'"
                                   " AND target_id = 'r9999'")

    # max_runs 2: the series completes after its last run; the parent's stats sum the runs
    parent = await completed(api, "daily")
    assert parent["next_run_at"] is None and parent["runs_started"] == 2
    assert parent["stats"]["stats_messages_sent"] == 81 and parent["stats"]["stats_recipients_total"] == 81
    assert await pool.fetchval("SELECT count(*) FROM campaigns WHERE parent_id = 'daily'") == 2

    st, page1 = await api.get("/campaigns/daily/runs?limit=1")
    assert st == 200 and [r["id"] for r in page1["runs"]] == ["daily-run-2"], page1
    st, page2 = await api.get(f"/campaigns/daily/runs?limit=1&next={page1['next']}")
    assert st == 200 and [r["id"] for r in page2["runs"]] == ["daily-run-1"] and "next" not in page2, page2
    st, back = await api.get(f"/campaigns/daily/runs?limit=1&prev={page2['prev']}")
    assert st == 200 and [r["id"] for r in back["runs"]] == ["daily-run-2"] and "prev" not in back, back

    async def events() -> list[tuple[str, str]] | None:
        rows = await pool.fetch(
            "SELECT campaign_id, event_type FROM webhook_deliveries WHERE event_type LIKE 'campaign.%'"
            " ORDER BY campaign_id, event_type")
        got = [(r[0], r[1]) for r in rows]
        return got if len(got) >= 5 else None
    assert await await_for(events) == [
        ("daily", "campaign.completed"),
        ("daily-run-1", "campaign.completed"), ("daily-run-1", "campaign.started"),
        ("daily-run-2", "campaign.completed"), ("daily-run-2", "campaign.started"),
    ]


async def occurrences(pool: Any, cid: str) -> list[tuple[str, str | None]]:
    rows = await pool.fetch("SELECT status, reason FROM campaign_occurrences WHERE campaign_id = $1"
                            " ORDER BY recorded_at, due_at", cid)
    return [(r[0], r[1]) for r in rows]


async def test_pause_skips_resume_continues_catch_up_and_stop_ends(
    api: Api, pool: Any, start_worker: Any,
) -> None:
    await setup(api, pool, 300, "series")
    await pool.execute("UPDATE apps SET settings = settings || '{\"campaign_send_rate\": 60}'")
    assert (await api.post("/campaigns/series/start"))[0] == 200
    start_worker(batch_size=20)

    st, body = await api.post("/campaigns/series/pause")
    assert st == 200 and body["campaign"]["status"] == "paused", body
    await make_due(pool, "series")
    await await_for(lambda: _equals(occurrences(pool, "series"), [("skipped", "paused")]))
    assert (await get(api, "series"))["runs_started"] == 0

    st, body = await api.post("/campaigns/series/resume")
    assert st == 200 and body["campaign"]["status"] == "scheduled", body
    assert datetime.fromisoformat(body["campaign"]["next_run_at"]) > datetime.now(UTC)

    # missed by more than catch_up (default 1 h): recorded as skipped, not sent late
    await make_due(pool, "series", "2 hours")
    await await_for(lambda: _equals(occurrences(pool, "series"), [("skipped", "paused"), ("skipped", "missed")]))
    # missed by less: runs once
    await make_due(pool, "series", "30 minutes")

    async def running() -> bool:
        st, b = await api.get("/campaigns/series-run-1")
        return st == 200 and b["campaign"]["status"] == "in_progress" and b["campaign"]["stats"]["stats_messages_sent"] > 0
    await await_for(running)

    st, body = await api.post("/campaigns/series/stop")
    assert st == 200 and body["campaign"]["status"] == "stopped" and body["campaign"]["next_run_at"] is None, body
    run = await get(api, "series-run-1")
    assert run["status"] == "stopped"
    sent = run["stats"]["stats_messages_sent"]
    assert 0 < sent < 300
    assert await pool.fetchval("SELECT count(*) FROM messages WHERE campaign_id = 'series-run-1'") == sent
    assert (await api.post("/campaigns/series/resume"))[0] == 400
    assert await occurrences(pool, "series") == [("skipped", "paused"), ("skipped", "missed"), ("started", None)]


async def _equals(got: Any, want: Any) -> bool:
    return bool(await got == want)


async def test_validation_names_the_field(api: Api, pool: Any) -> None:
    await pool.execute("INSERT INTO users (app_id, id) VALUES ($1, 'boss'), ($1, 'u1')", api.creds.app_id)
    base = {"sender_id": "boss", "user_ids": ["u1"], "message_template": {"text": "hi"}}
    for body, words in [
        ({"type": "recurring"}, ("schedule",)),
        ({"type": "weekly"}, ("type",)),
        ({"type": "recurring", "schedule": {**SCHEDULE, "timezone": "Europe/Atlantis"}}, ("schedule.timezone",)),
        ({"type": "recurring", "schedule": {**SCHEDULE, "time": "9am"}}, ("schedule.time",)),
        ({"type": "recurring", "schedule": {**SCHEDULE, "frequency": "monthly", "day_of_month": 31}},
         ("schedule.day_of_month",)),
        ({"schedule": SCHEDULE}, ("schedule", "recurring")),
        ({"id": "x" * 241, "type": "recurring", "schedule": SCHEDULE}, ("id", "240")),
    ]:
        st, err = await api.post("/campaigns", {**base, **body})
        assert_error(st, err, 400, 4, *words)
    assert not await pool.fetchval("SELECT count(*) FROM campaigns")

    st, body = await api.post("/campaigns", {**base, "id": "r", "type": "recurring", "schedule": SCHEDULE})
    assert st == 201 and body["campaign"]["schedule"] == SCHEDULE, body
    st, err = await api.post("/campaigns/r/start", {"stop_at": "2099-01-01T00:00:00Z"})
    assert_error(st, err, 400, 4, "stop_at", "ends_at")
    st, body = await api.post("/campaigns", {**base, "id": "once"})
    assert st == 201 and body["campaign"]["type"] == "one_time"
    st, err = await api.get("/campaigns/once/runs")
    assert_error(st, err, 400, 4, "not recurring")
    st, err = await api.post("/campaigns/r/pause")
    assert_error(st, err, 400, 4, "draft")
    st, body = await api.post("/campaigns/query", {"filter": {"type": "recurring"}})
    assert st == 200 and [c["id"] for c in body["campaigns"]] == ["r"], body


async def test_two_workers_start_each_occurrence_once(api: Api, pool: Any, start_worker: Any) -> None:
    await setup(api, pool, 30, "twice", max_runs=3)
    assert (await api.post("/campaigns/twice/start"))[0] == 200
    start_worker()
    start_worker()
    for n in (1, 2, 3):
        await make_due(pool, "twice")
        await completed(api, f"twice-run-{n}")
    await completed(api, "twice")
    assert [r[0] for r in await pool.fetch(
        "SELECT run_no FROM campaigns WHERE parent_id = 'twice' ORDER BY run_no")] == [1, 2, 3]
    assert await occurrences(pool, "twice") == [("started", None)] * 3
    for n in (1, 2, 3):
        await exactly_once(pool, f"twice-run-{n}", 30)

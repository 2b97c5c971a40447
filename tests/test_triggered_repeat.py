"""Triggered campaigns with once_per_user false (SPEC 5A): one message per (campaign, event),
every event of a user sent, exactly once under re-posts and a worker SIGKILL; the
occurrence campaigns follow their parent and its stats sum them."""

from __future__ import annotations

import signal
from typing import Any

from tests.helpers import Api, assert_error, await_for
from tests.test_triggered import create, setup


async def messages_to(pool: Any, cid: str) -> dict[str, int]:
    """Messages of the campaign and its occurrences per receiver, each with its ledger row."""
    rows = await pool.fetch(
        "SELECT r.target_id, count(*) AS n FROM campaigns c JOIN campaign_recipients r"
        " ON r.app_id = c.app_id AND r.campaign_id = c.id JOIN messages m ON m.id = r.message_id"
        " AND m.campaign_id = c.id WHERE (c.id = $1 OR c.parent_id = $1) AND r.status IN ('sent', 'read')"
        " GROUP BY 1", cid)
    return {r["target_id"]: int(r["n"]) for r in rows}


async def wait_total(pool: Any, cid: str, n: int) -> dict[str, int]:
    async def enough() -> dict[str, int] | None:
        got = await messages_to(pool, cid)
        return got if sum(got.values()) >= n else None
    return await await_for(enough, timeout=90)  # type: ignore[no-any-return]


def visits(user: str, ids: list[str]) -> list[dict[str, Any]]:
    return [{"id": i, "type": "visit", "user_id": user, "data": {"page": i}} for i in ids]


async def test_three_events_of_one_user_send_three_messages_and_reposts_send_nothing(
    api: Api, pool: Any, start_worker: Any,
) -> None:
    await setup(api, pool, 3)
    await create(api, "every", {"event": "visit"}, once_per_user=False)
    st, body = await api.get("/campaigns/every")
    assert body["campaign"]["once_per_user"] is False
    start_worker()
    st, body = await api.post("/events", {"events": visits("u0001", ["a", "b", "c"]) + visits("u0002", ["d"])})
    assert st == 201 and body["recorded"] == 4, body
    assert await wait_total(pool, "every", 4) == {"u0001": 3, "u0002": 1}

    # the same ids again: nothing; a new event of u0002 is its second message (the sentinel)
    st, body = await api.post("/events", {"events": visits("u0001", ["a", "b", "c"]) + visits("u0002", ["d"])})
    assert st == 201 and body["recorded"] == 0 and body["duplicates"] == 4, body
    st, body = await api.post("/events", {"events": visits("u0002", ["e"])})
    assert st == 201 and body["recorded"] == 1, body
    assert await wait_total(pool, "every", 5) == {"u0001": 3, "u0002": 2}
    trig = await pool.fetch("SELECT event_id, status, occurrence FROM campaign_triggers WHERE campaign_id = 'every'"
                            " ORDER BY event_id")
    assert [tuple(r) for r in trig] == [("a", "queued", 1), ("b", "queued", 2), ("c", "queued", 3),
                                        ("d", "queued", 1), ("e", "queued", 2)]
    # one channel per pair: u0001's three messages are in its one channel with the sender
    chans = await pool.fetch("SELECT m.cid, m.text FROM messages m JOIN campaigns c ON c.id = m.campaign_id"
                             " WHERE (c.id = 'every' OR c.parent_id = 'every') AND m.cid IN (SELECT cid FROM members"
                             " WHERE user_id = 'u0001') ORDER BY m.text")
    assert len({r["cid"] for r in chans}) == 1
    assert [r["text"] for r in chans] == ["Thanks for your order, U1"] * 3

    # reading the channel reads all three; the parent's stats sum its occurrences' messages and
    # count its distinct users (tests/test_triggered_family.py)
    cid = chans[0]["cid"]
    st, body = await api.post(f"/channels/{cid.replace(':', '/')}/read", {"user_id": "u0001"})
    assert st in (200, 201), body
    st, body = await api.get("/campaigns/every")
    s = body["campaign"]["stats"]
    assert s["stats_times_triggered"] == 5 and s["stats_messages_sent"] == 5, s
    assert s["stats_users_read"] == 1 and s["stats_users_sent"] == 2 and s["stats_recipients_total"] == 5, s
    st, body = await api.get("/campaigns/every/runs")
    assert st == 200, body
    assert [(r["id"], r["run_no"], r["type"], r["parent_id"]) for r in body["runs"]] == [
        ("every-occ-3", 3, "triggered", "every"), ("every-occ-2", 2, "triggered", "every")]

    # the occurrences follow the parent, and are refused on their own
    st, err = await api.post("/campaigns/every-occ-2/pause")
    assert_error(st, err, 400, 4, "occurrence", "every")
    assert (await api.post("/campaigns/every/pause"))[0] == 200
    assert {r[0] for r in await pool.fetch("SELECT status FROM campaigns WHERE parent_id = 'every'")} == {"paused"}
    st, body = await api.post("/events", {"events": visits("u0001", ["f"])})
    assert (await api.post("/campaigns/every/resume"))[0] == 200
    assert await wait_total(pool, "every", 6) == {"u0001": 4, "u0002": 2}
    assert await pool.fetchval("SELECT count(*) FROM campaigns WHERE parent_id = 'every'") == 3
    assert (await api.post("/campaigns/every/stop"))[0] == 200
    assert {r[0] for r in await pool.fetch("SELECT status FROM campaigns WHERE parent_id = 'every'")} == {"stopped"}
    assert (await api.delete("/campaigns/every"))[0] == 200
    assert not await pool.fetchval("SELECT count(*) FROM campaigns WHERE parent_id = 'every'")
    # the family's rows go with it in one set-based delete (store/purges.py)
    assert not await pool.fetchval("SELECT count(*) FROM campaign_recipients WHERE campaign_id LIKE 'every%'")
    assert not await pool.fetchval("SELECT count(*) FROM campaign_purges")


async def test_worker_sigkill_mid_stream_loses_and_doubles_no_repeated_send(
    api: Api, pool: Any, start_worker: Any,
) -> None:
    await setup(api, pool, 500)
    await pool.execute("UPDATE apps SET settings = settings || '{\"campaign_send_rate\": 500}'")
    await create(api, "again", {"event": "visit"}, once_per_user=False)
    w = start_worker(batch_size=100)
    for k in range(3):  # every user three times
        st, body = await api.post("/events", {"events": [
            {"id": f"v{k}-{i}", "type": "visit", "user_id": f"u{i:04d}"} for i in range(1, 501)]})
        assert st == 201 and body["recorded"] == 500, body
    await wait_total(pool, "again", 200)
    w.send_signal(signal.SIGKILL)
    w.wait()
    assert sum((await messages_to(pool, "again")).values()) < 1500
    start_worker(batch_size=100)
    got = await wait_total(pool, "again", 1500)
    assert got == {f"u{i:04d}": 3 for i in range(1, 501)}
    total = await pool.fetchval("SELECT count(*) FROM messages m JOIN campaigns c ON c.id = m.campaign_id"
                                " WHERE c.id = 'again' OR c.parent_id = 'again'")
    assert total == 1500
    assert not await pool.fetchval("SELECT count(*) FROM campaign_triggers WHERE campaign_id = 'again'"
                                   " AND status <> 'queued'")


async def test_validation_of_the_occurrence_id_length(api: Api, pool: Any) -> None:
    await pool.execute("INSERT INTO users (app_id, id) VALUES ($1, 'shop')", api.creds.app_id)
    base = {"type": "triggered", "sender_id": "shop", "message_template": {"text": "hi"},
            "trigger": {"event": "visit"}, "once_per_user": False}
    st, err = await api.post("/campaigns", {**base, "id": "x" * 241})
    assert_error(st, err, 400, 4, "once_per_user", "240")
    st, err = await api.post("/campaigns", {**base, "once_per_user": "no", "id": "y"})
    assert_error(st, err, 400, 4, "once_per_user")
    st, body = await api.post("/campaigns", {**base, "id": "x" * 240})
    assert st == 201 and body["campaign"]["once_per_user"] is False, body

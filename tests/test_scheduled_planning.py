"""Scheduled starts and recurring runs are planned like the start call (services/planning.py):
the tick takes the snapshot, flips the status and leaves the copy to a task of its worker
process, so while one campaign's audience is being copied the tick goes on firing, sending
and completing every other app's work. A worker killed mid-copy leaves the campaign to
another worker's reap, which copies it again: each recipient gets exactly one message.

A copy is held at its end, per campaign, by an uncommitted campaign_plans row for it (the
planner's INSERT waits for that row's transaction): "being planned" is a state the test
holds, not a race it hopes to win."""

from __future__ import annotations

import signal
from typing import Any

import asyncpg

from broadcaster.settings import Settings
from tests.helpers import Api, await_for
from tests.test_audience import N, campaign, complete, ledger, messages_per_recipient, setup
from tests.test_recurring import completed, exactly_once, make_due
from tests.test_recurring import setup as setup_series

RATE = 1_000_000


class Hold:
    """Holds one campaign's planner at its last statement (recording its counts)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    @classmethod
    async def take(cls, dsn: str, app_id: int, cid: str) -> Hold:
        conn = await asyncpg.connect(dsn)
        await conn.execute("BEGIN")
        await conn.execute("INSERT INTO campaign_plans (app_id, campaign_id, recipients, batches)"
                           " VALUES ($1, $2, 0, 0)", app_id, cid)
        return cls(conn)

    async def release(self) -> None:
        await self.conn.execute("ROLLBACK")
        await self.conn.close()


async def held(pool: Any) -> bool:
    """A planner has copied its audience and waits to record it."""
    return bool(await pool.fetchval(
        "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        " AND query LIKE 'INSERT INTO campaign_plans%'"))


async def schedule_now(api: Api, pool: Any, cid: str) -> None:
    """Scheduled for later, then made due: what the tick sees when that instant arrives."""
    st, body = await api.post(f"/campaigns/{cid}/start", {"scheduled_for": "2999-01-01T00:00:00Z"})
    assert st == 200 and body["campaign"]["status"] == "scheduled", body
    await pool.execute("UPDATE campaigns SET scheduled_for = now() WHERE app_id = $1 AND id = $2",
                       api.creds.app_id, cid)


async def test_another_apps_scheduled_campaign_is_sent_while_one_is_being_planned(
        api: Api, other_api: Api, pool: Any, settings: Settings, start_worker: Any) -> None:
    ids = await setup(api, pool, "big", RATE)
    other_ids = await setup(other_api, pool, "small", RATE)
    hold = await Hold.take(settings.database_url, api.creds.app_id, "big")
    start_worker()
    start_worker()  # two workers' ticks: still one start
    await schedule_now(api, pool, "big")
    await await_for(lambda: held(pool), timeout=90)
    c = await campaign(api, "big")
    assert c["status"] == "in_progress" and c["stats"]["stats_recipients_total"] == 0, c

    # The tick is free: it fires the other app's scheduled campaign, which is planned, sent
    # and completed while the first one's copy is still held.
    await schedule_now(other_api, pool, "small")
    done = await complete(other_api, "small")
    assert done["stats"]["stats_messages_sent"] == N, done["stats"]
    assert set(await ledger(pool, "small")) == set(other_ids)
    assert await held(pool)
    assert (await campaign(api, "big"))["stats"]["stats_recipients_total"] == 0

    await hold.release()
    big = await complete(api, "big")
    assert big["stats"]["stats_recipients_total"] == N and big["stats"]["stats_messages_sent"] == N, big
    assert set(await ledger(pool, "big")) == set(ids)
    assert set((await messages_per_recipient(pool, "big")).values()) == {1}
    assert not await pool.fetchval("SELECT count(*) FROM campaign_plans")


async def test_a_worker_killed_mid_copy_is_recovered_by_reap_exactly_once(
        api: Api, pool: Any, settings: Settings, start_worker: Any) -> None:
    ids = await setup(api, pool, "crash", RATE)
    app_id = api.creds.app_id
    # A target added before the start instant: in the audience however the copy ends.
    await pool.execute("INSERT INTO users (app_id, id, name) VALUES ($1, 'early', 'Early')", app_id)
    st, body = await api.post("/segments/list/addtargets", {"target_ids": ["early"]})
    assert st in (200, 201), body
    hold = await Hold.take(settings.database_url, app_id, "crash")
    w = start_worker()
    await schedule_now(api, pool, "crash")
    await await_for(lambda: held(pool), timeout=90)
    w.send_signal(signal.SIGKILL)
    w.wait(30)

    # PostgreSQL ends the dead process's planner (client_connection_check_interval) and
    # rolls its copy back: nothing of the audience or its batches is left.
    async def planner_gone() -> bool:
        return not await pool.fetchval("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")
    await await_for(planner_gone, timeout=60)
    await hold.release()
    for table in ("campaign_audience", "campaign_batches", "campaign_plans"):
        assert not await pool.fetchval(f"SELECT count(*) FROM {table} WHERE campaign_id = 'crash'"), table
    c = await campaign(api, "crash")
    assert c["status"] == "in_progress" and c["stats"]["stats_recipients_total"] == 0, c

    start_worker()  # its tick's reap finds the campaign unplanned, its lock free: copies again
    done = await complete(api, "crash")
    assert done["stats"]["stats_recipients_total"] == N + 1, done["stats"]
    assert done["stats"]["stats_messages_sent"] == N + 1, done["stats"]
    assert set(await ledger(pool, "crash")) == {*ids, "early"}
    per = await messages_per_recipient(pool, "crash")
    assert set(per) == {*ids, "early"} and set(per.values()) == {1}


async def test_a_recurring_run_is_planned_in_the_background_with_its_own_audience_and_ledger(
        api: Api, pool: Any, settings: Settings, start_worker: Any) -> None:
    await setup_series(api, pool, 40, "daily", max_runs=2)
    app_id = api.creds.app_id
    st, body = await api.post("/campaigns/daily/start")
    assert st == 200 and body["campaign"]["status"] == "scheduled", body
    hold = await Hold.take(settings.database_url, app_id, "daily-run-1")
    start_worker()
    await make_due(pool, "daily")
    await await_for(lambda: held(pool), timeout=90)
    run1 = await campaign(api, "daily-run-1")
    assert run1["status"] == "in_progress" and run1["stats"]["stats_recipients_total"] == 0, run1
    # Added after run 1 started (its snapshot), while its copy is still running: not in run 1.
    await pool.execute("INSERT INTO users (app_id, id, name) VALUES ($1, 'r9999', 'Late')", app_id)

    await hold.release()
    run1 = await complete(api, "daily-run-1")
    assert run1["stats"]["stats_recipients_total"] == 40, run1["stats"]
    await exactly_once(pool, "daily-run-1", 40)
    assert "r9999" not in await ledger(pool, "daily-run-1")

    await make_due(pool, "daily")
    run2 = await completed(api, "daily-run-2")  # polls until the run exists
    assert run2["stats"]["stats_recipients_total"] == 41, run2["stats"]
    await exactly_once(pool, "daily-run-2", 41)
    await exactly_once(pool, "daily-run-1", 40)
    assert (await ledger(pool, "daily-run-2"))["r9999"] == ("sent", None)
    assert not await pool.fetchval("SELECT count(*) FROM campaign_plans")

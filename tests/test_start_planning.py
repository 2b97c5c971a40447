"""The start call answers before the audience is copied (services/planning.py), and the
audience is still the one of the start call (SPEC 5): targets added right after it do not
receive the campaign, targets removed right after it do. The copy runs under the planner's
snapshot, outlives the API's command timeout, and a copy interrupted by the API process
dying is redone by the workers' tick; one committed but not marked is marked by it."""

from __future__ import annotations

from typing import Any

import aiohttp
import asyncpg
import pytest

from broadcaster.services import campaigns as use_cases
from broadcaster.services import planning
from broadcaster.settings import Settings
from broadcaster.store import campaigns
from tests.helpers import Api, assert_error, await_for
from tests.test_audience import N, campaign, complete, ledger, setup
from tests.test_click_outbox import serve  # noqa: F401  (the fixture: `broadcaster serve` processes)

RATE = 1_000_000  # no send-rate limit to speak of


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # The copy is held back by a lock in these tests: the start call answers after 1 s, and the
    # API's statement bound is 2 s, shorter than the copy is made to take.
    return settings.with_(start_wait_s=1.0, api_command_timeout_s=2.0, click_drainer=False)


class Blocker:
    """Holds campaign_plans locked: a planner's copy finishes, then waits to record its counts."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    @classmethod
    async def take(cls, dsn: str) -> Blocker:
        conn = await asyncpg.connect(dsn)
        await conn.execute("BEGIN; LOCK TABLE campaign_plans IN SHARE MODE")
        return cls(conn)

    async def release(self) -> None:
        await self.conn.execute("ROLLBACK")
        await self.conn.close()


async def planner_waiting(pool: Any, for_s: float) -> bool:
    return bool(await pool.fetchval(
        "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'INSERT INTO campaign_plans%'"
        " AND now() - query_start > make_interval(secs => $1)", for_s))


async def test_start_answers_before_the_audience_is_fixed_and_keeps_the_start_snapshot(
        api: Api, pool: Any, settings: Settings, start_worker: Any) -> None:
    ids = await setup(api, pool, "snap", RATE)
    await pool.execute("INSERT INTO users (app_id, id, name) VALUES ($1, 'late', 'Late')", api.creds.app_id)
    blocker = await Blocker.take(settings.database_url)
    st, body = await api.post("/campaigns/snap/start")
    assert st == 200, body
    c = body["campaign"]
    assert c["status"] == "in_progress" and c["stats"]["stats_recipients_total"] == 0, c
    assert c["stats"]["progress"] == 0, c

    # Right after the start call: a target added, one removed. Neither waits for the copy.
    st, body = await api.post("/segments/list/addtargets", {"target_ids": ["late"]})
    assert st in (200, 201), body
    st, body = await api.post("/segments/list/deletetargets", {"target_ids": [ids[7]]})
    assert st in (200, 201), body
    assert (await campaign(api, "snap"))["stats"]["stats_recipients_total"] == 0

    # The copy is done and has waited past the API's 2 s statement bound: it is not bound by it.
    await await_for(lambda: planner_waiting(pool, 3.0), timeout=60)
    await blocker.release()

    async def planned() -> dict[str, Any] | None:
        got = await campaign(api, "snap")
        return got if got["stats"]["stats_recipients_total"] else None
    got = await await_for(planned, timeout=60)
    assert got["stats"]["stats_recipients_total"] == N, got
    start_worker()
    done = await complete(api, "snap")
    assert done["stats"]["stats_messages_sent"] == N, done["stats"]
    rows = await ledger(pool, "snap")
    assert set(rows) == set(ids) and "late" not in rows
    assert rows[ids[7]] == ("sent", None)
    assert not await pool.fetchval("SELECT count(*) FROM campaign_plans")


async def test_api_killed_mid_copy_recovers(
        api: Api, pool: Any, settings: Settings, start_worker: Any, serve: Any) -> None:  # noqa: F811
    ids = await setup(api, pool, "kill", RATE)
    blocker = await Blocker.take(settings.database_url)
    proc, base = await serve(drainer=False)
    async with aiohttp.ClientSession(base_url=base) as s:
        st, body = await Api(s, api.creds).post("/campaigns/kill/start")  # type: ignore[arg-type]
    assert st == 200 and body["campaign"]["status"] == "in_progress", body
    assert body["campaign"]["stats"]["stats_recipients_total"] == 0, body
    await await_for(lambda: planner_waiting(pool, 0.0), timeout=60)
    proc.kill()
    proc.wait(30)

    # PostgreSQL ends the dead process's planner and rolls its copy back.
    async def planner_gone() -> bool:
        return not await pool.fetchval("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")
    await await_for(planner_gone, timeout=60)
    await blocker.release()
    assert not await pool.fetchval("SELECT count(*) FROM campaign_audience WHERE campaign_id = 'kill'")
    assert (await campaign(api, "kill"))["status"] == "in_progress"

    start_worker()  # its tick finds the campaign without a planner and fixes the audience again
    done = await complete(api, "kill")
    assert done["stats"]["stats_recipients_total"] == N and done["stats"]["stats_messages_sent"] == N, done
    assert set(await ledger(pool, "kill")) == set(ids)


async def test_a_copy_committed_but_not_marked_is_marked_by_the_tick(
        api: Api, pool: Any, settings: Settings, start_worker: Any) -> None:
    ids = await setup(api, pool, "mark", RATE)
    app_id = api.creds.app_id
    # The start call's steps up to the planner's commit, as if its process died right after.
    planner = await planning.Planner.open(settings.database_url, app_id, "mark")
    async with pool.acquire() as conn, conn.transaction():
        row = await campaigns.get(conn, app_id, "mark", lock="UPDATE")
        r = await use_cases.flip_start(conn, row, None, None)
    await planner.copy(r, settings.batch_size)
    planner.close()
    c = await campaign(api, "mark")
    assert c["status"] == "in_progress" and c["stats"]["stats_recipients_total"] == 0, c
    assert await pool.fetchval("SELECT recipients FROM campaign_plans WHERE campaign_id = 'mark'") == N

    start_worker()
    done = await complete(api, "mark")
    assert done["stats"]["stats_recipients_total"] == N and done["stats"]["stats_messages_sent"] == N, done
    assert set(await ledger(pool, "mark")) == set(ids)
    assert not await pool.fetchval("SELECT count(*) FROM campaign_plans")


async def test_a_campaign_still_being_planned_cannot_be_deleted(api: Api, pool: Any, settings: Settings) -> None:
    await setup(api, pool, "gone", RATE)
    blocker = await Blocker.take(settings.database_url)
    st, body = await api.post("/campaigns/gone/start")
    assert st == 200 and body["campaign"]["stats"]["stats_recipients_total"] == 0, body
    st, body = await api.post("/campaigns/gone/stop")
    assert st == 200 and body["campaign"]["status"] == "stopped", body
    st, body = await api.delete("/campaigns/gone")
    assert_error(st, body, 400, 4, "still fixing its audience")
    await blocker.release()

    async def planned() -> bool:
        return (await campaign(api, "gone"))["stats"]["stats_recipients_total"] == N
    await await_for(planned, timeout=60)
    st, body = await api.delete("/campaigns/gone")
    assert st == 200, body
    for table in ("campaign_audience", "campaign_batches", "campaign_plans"):
        assert not await pool.fetchval(f"SELECT count(*) FROM {table} WHERE campaign_id = 'gone'"), table

"""The tick never waits behind a running batch (store/fanout.open_batches skips rows a live
batch transaction holds). In a 1M bench run one batch sat in its statement for the workers'
120 s bound; its lease ran out after 10 s, and from then on every tick waited on its row lock
until arq cancelled it at 30 s, up to 8 at a time: no other campaign of any app was fired,
recovered or completed meanwhile.

Here the stuck batch is a transaction of the test holding that batch's row FOR UPDATE with its
lease over, as the stuck batch's own transaction did."""

from __future__ import annotations

from typing import Any

from broadcaster.settings import Settings
from tests.helpers import Api, await_for
from tests.test_audience import N, campaign, complete, ledger, messages_per_recipient, setup
from tests.test_scheduled_planning import schedule_now

RATE = 1_000_000


async def test_the_tick_serves_other_apps_while_a_batch_row_is_locked_past_its_lease(
        api: Api, other_api: Api, pool: Any, settings: Settings, start_worker: Any) -> None:
    ids = await setup(api, pool, "slow", RATE)
    other_ids = await setup(other_api, pool, "next", RATE)
    app_id = api.creds.app_id
    st, body = await api.post("/campaigns/slow/start")  # no worker yet: its batches wait in Redis
    assert st == 200, body

    async def planned() -> bool:
        return (await campaign(api, "slow"))["stats"]["stats_recipients_total"] == N
    await await_for(planned, timeout=60)
    stuck = await pool.fetchrow(
        "SELECT batch_no, n FROM campaign_batches WHERE app_id = $1 AND campaign_id = 'slow'"
        " ORDER BY batch_no LIMIT 1", app_id)
    # What a batch running past its lease looks like to the tick: started (its lease taken and
    # committed before its transaction), the lease over, its row locked by its transaction.
    await pool.execute(
        "UPDATE campaign_batches SET started_at = now(), lease_until = now() - interval '1 minute'"
        " WHERE app_id = $1 AND campaign_id = 'slow' AND batch_no = $2", app_id, stuck["batch_no"])
    holder = await pool.acquire()
    tr = holder.transaction()
    await tr.start()
    try:
        await holder.execute("SELECT 1 FROM campaign_batches WHERE app_id = $1 AND campaign_id = 'slow'"
                             " AND batch_no = $2 FOR UPDATE", app_id, stuck["batch_no"])
        start_worker()

        async def others_done() -> bool:
            return len(await ledger(pool, "slow")) == N - stuck["n"]
        await await_for(others_done, timeout=90)

        # Every tick from now on meets the locked row first: another app's scheduled campaign
        # is still fired, planned, sent and completed.
        await schedule_now(other_api, pool, "next")
        done = await complete(other_api, "next")
        assert done["stats"]["stats_messages_sent"] == N, done["stats"]
        assert set(await ledger(pool, "next")) == set(other_ids)
        assert (await campaign(api, "slow"))["status"] == "in_progress"
        assert not await pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND query LIKE 'WITH lost AS%'")
    finally:
        await tr.rollback()
        await pool.release(holder)

    # The batch's row is free: its job (or the tick, finding its lease over) runs it once.
    slow = await complete(api, "slow")
    assert slow["stats"]["stats_messages_sent"] == N, slow["stats"]
    assert set(await ledger(pool, "slow")) == set(ids)
    assert set((await messages_per_recipient(pool, "slow")).values()) == {1}

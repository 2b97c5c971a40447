"""A batch inserts its new distinct channels without ON CONFLICT (store/fanwrite): a pair
created by another transaction after the batch's snapshot fails its statement, and the same
job redoes the batch at once, taking that channel (services/batches: `fanwrite.pair_taken`).
Made deterministic here: the pair's channel is created in a transaction held open until the
batch's insert waits on it.

The outcome alone does not prove that redo: without it the job fails, and a second job for
the batch (the tick's once the lease runs out, or a starting worker's re-enqueue of every
open batch) finds the channel. What tells them apart is the batch row's `tries`, which every
enqueue bumps: a batch done by the job that hit the conflict ends with the count it had while
that job waited. The worker is told Redis is not new (worker.epoch_marker), so its startup
re-enqueue does not queue a second copy of the batch behind the first."""

from __future__ import annotations

from typing import Any

import redis as redis_sync

from broadcaster.settings import Settings
from broadcaster.store import channels
from broadcaster.worker import epoch_marker
from tests.helpers import Api, await_for
from tests.test_distinct import SENDER, completed, pair_channels, seed, segment, start


def redis_not_new(settings: Settings) -> None:
    """A worker starting now does not re-enqueue the open batches (the campaign's own enqueue is the one job)."""
    redis_sync.Redis.from_url(settings.redis_url).set(epoch_marker(settings.queue_name), "1")


async def batch_tries(pool: Any, app_id: int, cid: str) -> dict[int, tuple[int, bool]]:
    """batch_no -> (tries, done) as committed (a running batch's row lock does not hide it)."""
    rows = await pool.fetch("SELECT batch_no, tries, done FROM campaign_batches WHERE app_id = $1"
                            " AND campaign_id = $2", app_id, cid)
    return {r["batch_no"]: (r["tries"], r["done"]) for r in rows}


async def test_a_pair_created_under_a_batch_is_taken_by_the_same_job(
        api: Api, pool: Any, settings: Settings, start_worker: Any) -> None:
    app_id = api.creds.app_id
    users = await seed(api, pool, 40)
    await segment(api, "all", users)
    held = users[17]
    redis_not_new(settings)
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        try:
            # as get-or-create does, left uncommitted: invisible to the batch's probe
            assert await channels.create(conn, app_id, "messaging", "held", held, None, {}, [SENDER, held],
                                         pair=(SENDER, held))
            start_worker()
            await start(api, "c1", "all")

            async def write_waits() -> bool:  # the batch's plain insert waits for our transaction
                return bool(await pool.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    " AND query LIKE '%WITH x AS MATERIALIZED%'"))
            await await_for(write_waits, timeout=90)
            running = await batch_tries(pool, app_id, "c1")  # the enqueue count of the job now waiting
            assert [done for _, done in running.values()] == [False], running
        except BaseException:
            await tx.rollback()
            raise
        await tx.commit()
    c1 = await completed(api, "c1")
    assert c1["stats"]["stats_messages_sent"] == 40
    # done by the job whose insert failed: the batch was never enqueued again
    assert await batch_tries(pool, app_id, "c1") == {no: (tries, True) for no, (tries, _) in running.items()}

    chans = await pair_channels(pool, app_id)
    assert sorted(chans) == users and all(len(c) == 1 for c in chans.values())
    assert chans[held] == ["messaging:held"]
    msgs = await pool.fetch("SELECT cid, count(*) AS n FROM messages WHERE app_id = $1 AND campaign_id = 'c1'"
                            " GROUP BY cid", app_id)
    assert {r["cid"]: r["n"] for r in msgs} == {c[0]: 1 for c in chans.values()}
    ledger = await pool.fetch("SELECT target_id, channel_cid FROM campaign_recipients WHERE app_id = $1"
                              " AND campaign_id = 'c1'", app_id)
    assert sorted((r["target_id"], r["channel_cid"]) for r in ledger) == sorted((u, chans[u][0]) for u in users)
    count = await pool.fetchval("SELECT member_count FROM channels WHERE app_id = $1 AND cid = 'messaging:held'",
                                app_id)
    assert count == 2

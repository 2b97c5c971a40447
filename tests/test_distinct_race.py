"""A batch inserts its new distinct channels without ON CONFLICT (store/fanwrite): a pair
created by another transaction after the batch's snapshot fails its statement, and the batch
is redone taking that channel. Made deterministic here: the pair's channel is created in a
transaction held open until the batch's insert waits on it."""

from __future__ import annotations

from typing import Any

from broadcaster.store import channels
from tests.helpers import Api, await_for
from tests.test_distinct import SENDER, completed, pair_channels, seed, segment, start


async def test_a_pair_created_under_a_batch_is_taken_by_its_redo(api: Api, pool: Any, start_worker: Any) -> None:
    app_id = api.creds.app_id
    users = await seed(api, pool, 40)
    await segment(api, "all", users)
    held = users[17]
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
        except BaseException:
            await tx.rollback()
            raise
        await tx.commit()
    c1 = await completed(api, "c1")
    assert c1["stats"]["stats_messages_sent"] == 40

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

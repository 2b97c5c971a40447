"""`{{ channel.id }}` names the channel the message is in, also when a concurrent request
creates a recipient's 1:1 channel while its batch is being written (services/sending.py
renders such a batch again; before, the text carried the id the batch had chosen for a channel
that lost the race, while the message went into the winner).

The concurrent creators are get-or-creates held uncommitted by the test (store/channels.create
with the pair, as POST /channels/{type}/query does): the batch's probe does not see them. Its
plain insert waits for the first and fails on its pair when it commits (the batch is redone
contended, services/batches); the redo's insert waits for the second, which wins its pair
when it commits: that redo is rendered again (services/sending.write_batch). Both redos run in
the batch's first job: its batch rows' `tries` (bumped by every re-enqueue, such as the tick's
after a failed job's lease runs out, or a starting worker's: told here that Redis is not new)
are the same at the end as while it waited."""

from __future__ import annotations

from typing import Any

from broadcaster.settings import Settings
from broadcaster.store import channels
from tests.helpers import Api, await_for
from tests.test_audience import N, complete, ledger, setup
from tests.test_distinct_race import batch_tries, redis_not_new

RATE = 1_000_000
WINNER = "!members-got-there-first"
SECOND = "!members-and-again"


async def batch_waits_on(pool: Any, pid: int) -> bool:
    """A batch write waits for the transaction of backend `pid`."""
    return bool(await pool.fetchval(
        "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%WITH x AS MATERIALIZED%'"
        " AND $1 = ANY(pg_blocking_pids(pid))", pid))


async def test_channel_id_in_the_text_is_the_channel_that_won_a_concurrent_creation(
        api: Api, pool: Any, settings: Settings, start_worker: Any) -> None:
    ids = await setup(api, pool, "base", RATE)
    app_id = api.creds.app_id
    st, body = await api.post("/campaigns", {
        "id": "race", "sender_id": "boss", "segment_ids": ["list"], "skip_webhook": True,
        "message_template": {"text": "In {{ channel.id }}"}, "create_channels": True,
        "channel_template": {"type": "messaging"},
    })
    assert st == 201, body
    first, second = ids[5], ids[6]
    redis_not_new(settings)
    holders = [await pool.acquire(), await pool.acquire()]
    trs = [h.transaction() for h in holders]
    try:
        for h, tr, (name, target) in zip(holders, list(trs), ((WINNER, first), (SECOND, second)), strict=True):
            await tr.start()
            assert await channels.create(h, app_id, "messaging", name, "boss", None, {},
                                         ["boss", target], pair=("boss", target))
        pids = [await h.fetchval("SELECT pg_backend_pid()") for h in holders]
        st, body = await api.post("/campaigns/race/start")
        assert st == 200, body
        start_worker()
        # the batch's first write waits on the first creator, its contended redo on the second
        await await_for(lambda: batch_waits_on(pool, pids[0]), timeout=90)
        running = await batch_tries(pool, app_id, "race")
        await trs.pop(0).commit()
        await await_for(lambda: batch_waits_on(pool, pids[1]), timeout=90)
        await trs.pop(0).commit()
    except BaseException:
        for tr in trs:  # the ones not committed
            await tr.rollback()
        raise
    finally:
        for h in holders:
            await pool.release(h)

    done = await complete(api, "race")
    assert done["stats"]["stats_messages_sent"] == N, done["stats"]
    assert set(await ledger(pool, "race")) == set(ids)
    assert await batch_tries(pool, app_id, "race") == {no: (tries, True) for no, (tries, _) in running.items()}
    for name, target in ((WINNER, first), (SECOND, second)):
        row = await pool.fetchrow(
            "SELECT r.channel_cid, m.text FROM campaign_recipients r JOIN messages m ON m.app_id = r.app_id"
            " AND m.id = r.message_id WHERE r.campaign_id = 'race' AND r.target_id = $1", target)
        assert row["channel_cid"] == f"messaging:{name}" and row["text"] == f"In {name}", dict(row)
        assert await pool.fetchval(
            "SELECT count(*) FROM channels WHERE app_id = $1 AND pair_lo = 'boss' AND pair_hi = $2",
            app_id, target) == 1
        assert await pool.fetchval(
            "SELECT count(*) FROM messages WHERE app_id = $1 AND cid = $2", app_id, f"messaging:{name}") == 1
    # every message names its own channel
    wrong = await pool.fetchval(
        "SELECT count(*) FROM messages WHERE app_id = $1 AND campaign_id = 'race'"
        " AND text <> 'In ' || substr(cid, length('messaging:') + 1)", app_id)
    assert wrong == 0

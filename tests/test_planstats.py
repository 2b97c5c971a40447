"""A batch does not plan its 1:1 pair probe on statistics that call `channels` empty while it
has pages (store/planstats.py): an ANALYZE that sampled the table while its first rows were
uncommitted records exactly that, and the probe then scans all the app's channels for every
recipient. Autovacuum is off for `channels` here, so only the batch itself can correct it."""

from __future__ import annotations

from typing import Any

import asyncpg

from broadcaster.settings import Settings
from broadcaster.store.distinct import probe
from tests.test_audience import N, complete, messages_per_recipient, setup

# As the batch write runs it: the receivers an array, the sender and the type parameters.
PROBE = ("EXPLAIN SELECT " + probe("x.u", "$2", "$1", "$4::text") + " FROM unnest($3::text[]) x(u)")


async def probe_index(pool: Any, app_id: int) -> str:
    receivers = [f"r{i:05d}" for i in range(2000)]
    plan = "\n".join(r[0] for r in await pool.fetch(PROBE, app_id, "boss", receivers, "messaging"))
    return "channels_distinct_pair" if "channels_distinct_pair" in plan else plan


async def test_a_batch_analyzes_channels_believed_empty_and_probes_through_the_pair_index(
        api: Any, pool: Any, settings: Settings, start_worker: Any) -> None:
    ids = await setup(api, pool, "stats", 1_000_000)
    app_id = api.creds.app_id
    await pool.execute("ALTER TABLE channels SET (autovacuum_enabled = false)")
    # A first batch in flight while ANALYZE samples the table: pages, no live row.
    inflight = await asyncpg.connect(settings.database_url)
    try:
        await inflight.execute("BEGIN")
        await inflight.execute(
            "INSERT INTO channels (app_id, cid, type, id, created_by_id, member_count, pair_lo, pair_hi)"
            " SELECT $1, 'messaging:tmp' || g, 'messaging', 'tmp' || g, 'boss', 2, 'boss', 'tmp' || g"
            " FROM generate_series(1, 3000) g",
            app_id)
        await pool.execute("ANALYZE channels")
        await inflight.execute("ROLLBACK")
    finally:
        await inflight.close()
    st = await pool.fetchrow("SELECT relpages, reltuples FROM pg_class WHERE relname = 'channels'")
    assert st["relpages"] > 0 and st["reltuples"] == 0, dict(st)
    assert "channels_app_created" in await probe_index(pool, app_id)  # the plan the batches would get

    start_worker()
    st, body = await api.post("/campaigns/stats/start")
    assert st == 200, body
    done = await complete(api, "stats")
    assert done["stats"]["stats_messages_sent"] == N, done["stats"]
    per = await messages_per_recipient(pool, "stats")
    assert set(per) == set(ids) and set(per.values()) == {1}
    assert await pool.fetchval("SELECT reltuples FROM pg_class WHERE relname = 'channels'") > 0
    assert await probe_index(pool, app_id) == "channels_distinct_pair"

"""A batch does not plan its 1:1 pair probe on statistics that call `channels` empty
(store/planstats.py). Two states say so: vacuumed while empty (relpages 0, reltuples 0) and
analyzed while its first rows were uncommitted (pages, no live row). In both the probe is
planned on `channels_app_created` with `app_id` alone and scans all the app's channels for
each recipient. Autovacuum is off for `channels` here, so only the batch itself can mend it."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from broadcaster.settings import Settings
from broadcaster.store.distinct import probe
from tests.test_audience import N, complete, messages_per_recipient, setup

# As the batch write runs it: the receivers an array, the sender and the type parameters,
# sequential scans off (store/fanwrite._PROBES).
PROBE = ("EXPLAIN SELECT " + probe("x.u", "$2", "$1", "$4::text") + " FROM unnest($3::text[]) x(u)")


async def probe_index(pool: Any, app_id: int) -> str:
    receivers = [f"r{i:05d}" for i in range(2000)]
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL enable_seqscan = off")
        plan = "\n".join(r[0] for r in await conn.fetch(PROBE, app_id, "boss", receivers, "messaging"))
    return "channels_distinct_pair" if "channels_distinct_pair" in plan else plan


async def vacuumed_empty(pool: Any, settings: Settings, app_id: int) -> None:
    await pool.execute("DELETE FROM channels")
    await pool.execute("VACUUM (ANALYZE) channels")


async def analyzed_in_flight(pool: Any, settings: Settings, app_id: int) -> None:
    """A first batch in flight while ANALYZE samples the table: pages, no live row."""
    inflight = await asyncpg.connect(settings.database_url)
    try:
        await inflight.execute("BEGIN")
        await inflight.execute(
            "INSERT INTO channels (app_id, cid, type, id, created_by_id, member_count, pair_lo, pair_hi)"
            " SELECT $1, 'messaging:tmp' || g, 'messaging', 'tmp' || g, 'boss', 2, 'boss', 'tmp' || g"
            " FROM generate_series(1, 3000) g", app_id)
        await pool.execute("ANALYZE channels")
        await inflight.execute("ROLLBACK")
    finally:
        await inflight.close()


@pytest.mark.parametrize("state", [vacuumed_empty, analyzed_in_flight])
async def test_a_batch_clears_statistics_that_call_channels_empty(
        api: Any, pool: Any, settings: Settings, start_worker: Any, state: Any) -> None:
    ids = await setup(api, pool, "stats", 1_000_000)
    app_id = api.creds.app_id
    await pool.execute("ALTER TABLE channels SET (autovacuum_enabled = false)")
    await state(pool, settings, app_id)
    assert await pool.fetchval("SELECT reltuples FROM pg_class WHERE relname = 'channels'") == 0
    assert "channels_app_created" in await probe_index(pool, app_id)  # the plan the batches would get

    start_worker()
    st, body = await api.post("/campaigns/stats/start")
    assert st == 200, body
    done = await complete(api, "stats")
    assert done["stats"]["stats_messages_sent"] == N, done["stats"]
    per = await messages_per_recipient(pool, "stats")
    assert set(per) == set(ids) and set(per.values()) == {1}
    # cleared by the batches (autovacuum is off): "never analyzed", planned from the real size
    assert await pool.fetchval("SELECT reltuples FROM pg_class WHERE relname = 'channels'") == -1
    assert await probe_index(pool, app_id) == "channels_distinct_pair"

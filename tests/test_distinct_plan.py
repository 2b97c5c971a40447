"""A batch's 1:1 pair probe (store/distinct.probe) is planned on the pair index whatever
`channels`' statistics say (migration 0250). With the index on plain app_id, statistics that
put the campaign's app at ~1 channel planned the probe on `channels_app_created` with
`app_id` alone, and each recipient's probe walked all the app's channels (docs/scaling.md, the
first-batches stall): an app new to the statistics (another app's channels analyzed, this
app's created since), a table vacuumed while empty, one analyzed while its first rows were
uncommitted. Autovacuum is off for `channels` here, so the statistics stay as each state
left them while the campaign runs."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from broadcaster.settings import Settings
from broadcaster.store.distinct import probe
from broadcaster.store.fanwrite import _PROBES
from tests.test_audience import N, complete, messages_per_recipient, setup

# As the batch write runs it: the receivers an array, the sender and the type parameters,
# under the batch transaction's forced settings (store/fanwrite._PROBES).
PROBE = ("EXPLAIN SELECT " + probe("x.u", "$2", "$1", "$4::text") + " FROM unnest($3::text[]) x(u)")
FILL = ("INSERT INTO channels (app_id, cid, type, id, created_by_id, member_count, pair_lo, pair_hi)"
        " SELECT $1, 'messaging:' || $2 || g, 'messaging', $2 || g, 'boss', 2, 'boss', $2 || g"
        " FROM generate_series(1, $3) g")


async def probe_plan(pool: Any, app_id: int) -> str:
    receivers = [f"r{i:05d}" for i in range(2000)]
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(_PROBES)
        return "\n".join(r[0] for r in await conn.fetch(PROBE, app_id, "boss", receivers, "messaging"))


async def never_analyzed(pool: Any, settings: Settings, app_id: int) -> None:
    await pool.execute(FILL, app_id, "new", 3000)


async def new_app(pool: Any, settings: Settings, app_id: int) -> None:
    """Another app's channels analyzed, this app's created after: app_id's statistics put it
    at ~1 row, which no longer matches any index leading with plain app_id."""
    other = await pool.fetchval("INSERT INTO apps (name, api_key, api_secret) VALUES ('old', 'old-k', 'old-s')"
                                " RETURNING id")
    await pool.execute(FILL, other, "old", 20000)
    await pool.execute("ANALYZE channels")
    await pool.execute(FILL, app_id, "new", 3000)


async def vacuumed_empty(pool: Any, settings: Settings, app_id: int) -> None:
    await pool.execute("DELETE FROM channels")
    await pool.execute("VACUUM (ANALYZE) channels")


async def analyzed_in_flight(pool: Any, settings: Settings, app_id: int) -> None:
    """A first batch in flight while ANALYZE samples the table: pages, no live row."""
    inflight = await asyncpg.connect(settings.database_url)
    try:
        await inflight.execute("BEGIN")
        await inflight.execute(FILL, app_id, "tmp", 3000)
        await pool.execute("ANALYZE channels")
        await inflight.execute("ROLLBACK")
    finally:
        await inflight.close()


@pytest.mark.parametrize("state", [never_analyzed, new_app, vacuumed_empty, analyzed_in_flight])
async def test_the_pair_probe_uses_the_pair_index_in_every_statistics_state(
        api: Any, pool: Any, settings: Settings, state: Any) -> None:
    await pool.execute("ALTER TABLE channels SET (autovacuum_enabled = false)")
    await state(pool, settings, api.creds.app_id)
    plan = await probe_plan(pool, api.creds.app_id)
    assert "Index Scan using channels_distinct_pair on channels" in plan, plan
    assert "channels_app_created" not in plan and "channels_pkey" not in plan, plan


@pytest.mark.parametrize("state", [new_app, vacuumed_empty])
async def test_a_campaign_sends_once_to_each_recipient_under_stale_statistics(
        api: Any, pool: Any, settings: Settings, start_worker: Any, state: Any) -> None:
    ids = await setup(api, pool, "stats", 1_000_000)
    app_id = api.creds.app_id
    await pool.execute("ALTER TABLE channels SET (autovacuum_enabled = false)")
    await state(pool, settings, app_id)
    before = await pool.fetchrow("SELECT reltuples, relpages FROM pg_class WHERE relname = 'channels'")

    start_worker()
    st, body = await api.post("/campaigns/stats/start")
    assert st == 200, body
    done = await complete(api, "stats")
    assert done["stats"]["stats_messages_sent"] == N, done["stats"]
    per = await messages_per_recipient(pool, "stats")
    assert set(per) == set(ids) and set(per.values()) == {1}
    channels = await pool.fetchval(
        "SELECT count(DISTINCT r.channel_cid) FROM campaign_recipients r JOIN channels c ON c.app_id = r.app_id"
        " AND c.cid = r.channel_cid WHERE r.campaign_id = 'stats' AND 'boss' IN (c.pair_lo, c.pair_hi)")
    assert channels == N
    # the statistics are still the stale ones the batches were planned with
    assert await pool.fetchrow("SELECT reltuples, relpages FROM pg_class WHERE relname = 'channels'") == before
    assert "channels_distinct_pair" in await probe_plan(pool, app_id)

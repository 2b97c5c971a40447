"""The plan of the batch write's 1:1 channel probe (store/distinct.probe, under the batch's
forced settings, fanwrite._PROBES) on a fresh embedded PostgreSQL, by the state of the channels
table's statistics: never vacuumed or analyzed, empty and vacuumed (what benchsettle's VACUUM
leaves before a first campaign), rows inserted without a vacuum, analyzed, and a second app's
rows inserted after that analyze (an app new to the statistics: docs/scaling.md, the
first-batches stall). Prints each state's reltuples/relpages and the probe's plan.

    python scripts/probe_plan.py DATA_DIR [--vacuum-empty]
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import asyncpg

from broadcaster import devstack
from broadcaster.migrate import migrate
from broadcaster.store.distinct import probe
from broadcaster.store.fanwrite import _PROBES

QUERY = ("EXPLAIN SELECT " + probe("v.tg", "'sender'", "$1", "'messaging'::text")
         + " FROM (VALUES ('u000000001'), ('u000000002')) v(tg)")
FILL = ("INSERT INTO channels (app_id, cid, type, id, created_by_id, custom, member_count, pair_lo, pair_hi)"
        " SELECT $2, 'messaging:!members-' || lpad(g::text, 9, '0'), 'messaging', '!members-' || lpad(g::text, 9, '0'),"
        " 'sender', '{}', 2, 'sender', 'u' || lpad(g::text, 9, '0')"
        " FROM generate_series((SELECT count(*) FROM channels WHERE app_id = $2) + 1, $1) g")


async def show(conn: asyncpg.Connection, label: str, app_id: int = 1) -> None:
    async with conn.transaction():
        await conn.execute(_PROBES)
        plan = [r[0] for r in await conn.fetch(QUERY, app_id)]
    pages, tuples = await conn.fetchrow("SELECT relpages, reltuples FROM pg_class WHERE relname = 'channels'")
    print(f"== {label}: relpages={pages} reltuples={tuples}")
    for line in plan:
        print("   ", line)


async def main(data_dir: Path, vacuum_empty: bool) -> None:
    pg = devstack.start_postgres(data_dir / "pg", throwaway=True)
    try:
        admin = await asyncpg.connect(pg.admin_url)
        await admin.execute("CREATE DATABASE probe_plan")
        await admin.close()
        url = pg.url_for("probe_plan")
        await migrate(url)
        conn = await asyncpg.connect(url)
        await conn.execute("INSERT INTO apps (id, name, api_key, api_secret) VALUES (1, 'a', 'k', 's'), (2, 'b', 'k2', 's2')")
        await show(conn, "empty, never vacuumed or analyzed")
        if vacuum_empty:
            await conn.execute("VACUUM (ANALYZE) channels")
            await show(conn, "empty, vacuumed and analyzed")
        for n in (2_000, 20_000, 100_000):
            await conn.execute(FILL, n, 1)
            await show(conn, f"{n} rows, no vacuum or analyze since")
        await conn.execute("ANALYZE channels")
        await show(conn, "analyzed")
        await conn.execute(FILL, 40_000, 2)
        await show(conn, "a second app's 40000 rows inserted after the analyze", 2)
        await conn.close()
    finally:
        pg.stop()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), "--vacuum-empty" in sys.argv[2:]))

"""A batch's per-recipient lookups (store/fanwrite: the user of each recipient, and for a
channel audience the channel and its members) are planned on the primary keys when the
campaign's app is new to the statistics: another app's rows analyzed, this app's added since,
so ANALYZE last saw ~0 rows of it. Compared with the app id as a plain parameter, the planner
estimated the app at ~1 row, every index leading with app_id looked as cheap as the primary
key, and the lookups ran on users_app_name and members_app_user, each walking all the app's
rows. The lookups now compare an InitPlan's value (fanwrite.LOOKUP_APP). Autovacuum is off for
the tables here, so the statistics stay as the test left them."""

from __future__ import annotations

from typing import Any

from broadcaster.store.fanwrite import _PROBES, PENDING_CHANNELS, PENDING_USERS

TABLES = ("users", "channels", "members", "campaign_audience", "campaign_recipients")
OLD, NEW = 20000, 3000


async def _app(pool: Any, name: str) -> int:
    return int(await pool.fetchval(
        "INSERT INTO apps (name, api_key, api_secret) VALUES ($1, $1 || '-k', $1 || '-s') RETURNING id", name))


async def _fill(pool: Any, app_id: int, n: int) -> None:
    """n users, each with a 1:1 channel with 'boss' (two members), all in a campaign's audience."""
    await pool.execute("INSERT INTO users (app_id, id, name) SELECT $1, 'boss', 'Boss'", app_id)
    await pool.execute("INSERT INTO users (app_id, id, name) SELECT $1, 'u' || lpad(g::text, 6, '0'),"
                       " 'User ' || g FROM generate_series(1, $2) g", app_id, n)
    await pool.execute(
        "INSERT INTO channels (app_id, cid, type, id, created_by_id, member_count)"
        " SELECT $1, 'messaging:c' || lpad(g::text, 6, '0'), 'messaging', 'c' || lpad(g::text, 6, '0'), 'boss', 2"
        " FROM generate_series(1, $2) g", app_id, n)
    await pool.execute(
        "INSERT INTO members (app_id, cid, user_id) SELECT $1, 'messaging:c' || lpad(g::text, 6, '0'), m"
        " FROM generate_series(1, $2) g, LATERAL (VALUES ('boss'), ('u' || lpad(g::text, 6, '0'))) v(m)",
        app_id, n)
    for kind, target in (("u", "'u' || lpad(g::text, 6, '0')"), ("c", "'messaging:c' || lpad(g::text, 6, '0')")):
        await pool.execute(f"INSERT INTO campaign_audience (app_id, campaign_id, target_id)"
                           f" SELECT $1, '{kind}', {target} FROM generate_series(1, $2) g", app_id, n)


async def _plan(pool: Any, sql: str, *args: Any) -> str:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(_PROBES)
        return "\n".join(r[0] for r in await conn.fetch("EXPLAIN " + sql, *args))


def _index_scans(plan: str) -> set[str]:
    return {line.split(" using ")[1].split(" on ")[0] for line in plan.splitlines() if " using " in line}


async def test_the_lookups_of_an_app_new_to_the_statistics_use_the_primary_keys(pool: Any) -> None:
    for t in TABLES:
        await pool.execute(f"ALTER TABLE {t} SET (autovacuum_enabled = false)")
    await _fill(pool, await _app(pool, "old"), OLD)
    await pool.execute("ANALYZE " + ", ".join(TABLES))
    app = await _app(pool, "new")
    await _fill(pool, app, NEW)
    # the state the test is about: ANALYZE has seen one app only
    assert await pool.fetchval("SELECT n_distinct FROM pg_stats WHERE tablename = 'users' AND attname = 'app_id'") == 1

    users = _index_scans(await _plan(pool, PENDING_USERS, app, "u", None, "u999999"))
    assert "users_pkey" in users, users
    assert not users & {"users_app_name", "users_app_created", "users_app_updated"}, users

    chans = _index_scans(await _plan(pool, PENDING_CHANNELS, app, "c", None, "messaging:c999999", "boss"))
    assert {"channels_pkey", "members_pkey", "users_pkey"} <= chans, chans
    assert not chans & {"channels_app_created", "members_app_user", "users_app_name", "users_app_created",
                        "users_app_updated"}, chans

    # and they find what they should: every recipient's user, every channel's other member
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(_PROBES)
        rows = await conn.fetch(PENDING_USERS, app, "u", None, "u000100")
        crows = await conn.fetch(PENDING_CHANNELS, app, "c", None, "messaging:c000100", "boss")
    assert [r["id"] for r in rows] == [f"u{g:06d}" for g in range(1, 101)] and all(r["found"] for r in rows)
    assert [(r["chid"], r["rid"]) for r in crows] == [(f"c{g:06d}", f"u{g:06d}") for g in range(1, 101)]

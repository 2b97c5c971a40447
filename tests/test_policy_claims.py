"""Frequency caps' range claims (0170_caps_from_ledger.sql, store/policy.claim): a batch's
claim on its range of user ids holds until its transaction ends, overlapping claims of
other transactions wait for it, disjoint ones and other apps' do not, and nothing is left
behind to block a later batch."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from broadcaster.store import policy as store
from tests.helpers import await_for


async def _waiting(pool: Any, conn: asyncpg.Connection) -> bool:
    pid = conn.get_server_pid()
    return bool(await pool.fetchval(
        "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", pid))


async def _conns(settings: Any, n: int) -> list[asyncpg.Connection]:
    return [await asyncpg.connect(settings.database_url) for _ in range(n)]


async def test_an_overlapping_claim_waits_for_the_holders_commit_and_a_disjoint_one_does_not(
    pool: Any, settings: Any,
) -> None:
    a, b, c = await _conns(settings, 3)
    try:
        ta = a.transaction()
        await ta.start()
        await store.claim(a, 1, ("u100", "u200"))
        # disjoint ranges (the bound is exclusive below, inclusive above) and another app's
        # overlapping range go through while a holds its claim
        for app, bounds in ((1, ("u200", "u300")), (1, (None, "u100")), (2, ("u000", "u999"))):
            async with c.transaction():
                await asyncio.wait_for(store.claim(c, app, bounds), timeout=60)
        tb = b.transaction()
        await tb.start()
        waiter = asyncio.create_task(store.claim(b, 1, ("u150", "u160")))
        await await_for(lambda: _waiting(pool, b), timeout=60)
        assert not waiter.done()
        await ta.commit()
        await asyncio.wait_for(waiter, timeout=60)
        await tb.rollback()
        # committed or rolled back, no claim outlives its transaction
        assert await pool.fetchval("SELECT count(*) FROM policy_claims") == 0
        async with c.transaction():
            await asyncio.wait_for(store.claim(c, 1, (None, "u999")), timeout=60)
    finally:
        for x in (a, b, c):
            await x.close()


async def test_a_batch_waiting_on_a_claim_reads_the_holders_counted_sends(pool: Any, settings: Any) -> None:
    """The order a capped batch runs in: claim, count, write its ledger rows, commit."""
    now = await pool.fetchval("SELECT now()")
    a, b = await _conns(settings, 2)
    try:
        ta = a.transaction()
        await ta.start()
        await store.claim(a, 1, ("m", "z"))
        assert await store.capped(a, 1, ["nia"], now, [(1, 86400.0)]) == set()
        await a.execute("INSERT INTO campaign_recipients (app_id, campaign_id, target_id, user_id, status,"
                        " sent_at, capped_at) VALUES (1, 'first', 'nia', 'nia', 'sent', now(), $1)", now)
        tb = b.transaction()
        await tb.start()

        async def second() -> set[str]:
            await store.claim(b, 1, ("a", "o"))
            return await store.capped(b, 1, ["nia"], now, [(1, 86400.0)])

        waiter = asyncio.create_task(second())
        await await_for(lambda: _waiting(pool, b), timeout=60)
        await ta.commit()
        assert await asyncio.wait_for(waiter, timeout=60) == {"nia"}
        await tb.rollback()
    finally:
        await a.close()
        await b.close()

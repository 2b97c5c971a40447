"""Which open batches the tick takes for lost (store/fanout.open_batches, issue 15): a started
batch whose lease ran out (its worker died) at once; a batch still queued only once its
campaign stopped making progress, so a campaign whose queue drains for longer than one queued
lease is not re-enqueued over and over (5M recipients: 2,500 batches behind one another)."""

from __future__ import annotations

from typing import Any

from broadcaster.store import fanout


async def batches(pool: Any, app_id: int, rows: list[tuple[int, bool, str, str | None, str | None]]) -> None:
    """(batch_no, done, lease_until offset, started_at offset, done_at offset) as intervals from now."""
    for no, done, lease, started, done_at in rows:
        await pool.execute(
            "INSERT INTO campaign_batches (app_id, campaign_id, batch_no, after_id, upto_id, n, done,"
            " lease_until, started_at, done_at) VALUES ($1, 'c', $2, NULL, $3, 10, $4, now() + $5::text::interval,"
            " now() + $6::text::interval, now() + $7::text::interval)",
            app_id, no, f"u{no:04d}", done, lease, started, done_at)


async def lost(pool: Any, app_id: int) -> list[int]:
    async with pool.acquire() as conn:
        return sorted(no for no, _ in await fanout.open_batches(conn, app_id, "c"))


async def test_queued_batches_of_a_progressing_campaign_are_not_lost(pool: Any, creds: Any) -> None:
    await batches(pool, creds.app_id, [
        (0, True, "-50 s", "-55 s", "-2 s"),     # done 2 s ago: the queue is draining
        (1, False, "-5 s", "-15 s", None),       # started, its lease over: its worker died
        (2, False, "-20 s", None, None),         # queued 50 s ago, lease over, still queued
        (3, False, "+10 s", "-1 s", None),       # running
    ])
    assert await lost(pool, creds.app_id) == [1]
    # the re-enqueued one is queued again (not started) and leased anew
    row = await pool.fetchrow("SELECT tries, started_at, lease_until > now() AS leased FROM campaign_batches"
                              " WHERE app_id = $1 AND batch_no = 1", creds.app_id)
    assert row["tries"] == 1 and row["started_at"] is None and row["leased"]
    assert await lost(pool, creds.app_id) == []


async def test_queued_batches_of_a_stalled_campaign_are_lost(pool: Any, creds: Any) -> None:
    await batches(pool, creds.app_id, [
        (0, True, "-90 s", "-95 s", "-60 s"),    # the last progress a minute ago (Redis lost the queue)
        (1, False, "-20 s", None, None),
        (2, False, "-20 s", None, None),
        (3, False, "+20 s", None, None),         # queued again recently: not yet
    ])
    assert await lost(pool, creds.app_id) == [1, 2]

"""The audience is copied in chunks (services/planning.py), each committed under the start
call's snapshot and its batches enqueued at once: the first messages go out while the rest is
still being copied, and `stats_recipients_total` stays 0 until the whole audience is fixed. A
planner whose API process dies after some chunks committed leaves them; the workers' reap
continues after the last one: every recipient gets exactly one message, the batches chain
without gap or overlap, and the total is exact.

The copy is held inside its second chunk by an uncommitted campaign_audience row of a
recipient of that chunk (the chunk's INSERT waits for that row's transaction)."""

from __future__ import annotations

from typing import Any

import aiohttp
import asyncpg
import pytest

from broadcaster.services import planning
from broadcaster.settings import Settings
from tests.helpers import Api, await_for
from tests.test_audience import N, campaign, complete, ledger, messages_per_recipient, setup
from tests.test_click_outbox import serve  # noqa: F401  (the fixture: `broadcaster serve` processes)

RATE = 1_000_000
FIRST = planning.FIRST_CHUNK_BATCHES  # batches in the first chunk


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.with_(start_wait_s=1.0, click_drainer=False)


class ChunkHold:
    """An uncommitted campaign_audience row for one recipient: the chunk holding it waits."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    @classmethod
    async def take(cls, dsn: str, app_id: int, cid: str, target: str) -> ChunkHold:
        conn = await asyncpg.connect(dsn)
        await conn.execute("BEGIN")
        await conn.execute("INSERT INTO campaign_audience (app_id, campaign_id, target_id) VALUES ($1, $2, $3)",
                           app_id, cid, target)
        return cls(conn)

    async def release(self) -> None:
        await self.conn.execute("ROLLBACK")
        await self.conn.close()


async def chunk_waiting(pool: Any) -> int | None:
    """The backend of a chunk waiting for the held row."""
    return await pool.fetchval(  # type: ignore[no-any-return]
        "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%INSERT INTO campaign_audience%'"
        " AND pid <> pg_backend_pid()")


async def test_first_chunk_is_sent_before_planning_ends_and_a_killed_planner_is_continued_exactly_once(
        api: Api, pool: Any, settings: Settings, start_worker: Any, serve: Any) -> None:  # noqa: F811
    ids = await setup(api, pool, "chunks", RATE)
    app_id = api.creds.app_id
    first = FIRST * settings.batch_size
    assert first < N, "the audience must span more than one chunk"
    hold = await ChunkHold.take(settings.database_url, app_id, "chunks", ids[first + 10])
    start_worker()
    proc, base = await serve(drainer=False)
    async with aiohttp.ClientSession(base_url=base) as s:
        st, body = await Api(s, api.creds).post("/campaigns/chunks/start")  # type: ignore[arg-type]
    assert st == 200 and body["campaign"]["status"] == "in_progress", body
    pid = await await_for(lambda: chunk_waiting(pool), timeout=60)

    # The first chunk is committed and sent while the second is still being copied.
    async def first_sent() -> dict[str, Any] | None:
        c = await campaign(api, "chunks")
        return c if c["stats"]["stats_messages_sent"] >= first else None
    c = await await_for(first_sent, timeout=90)
    assert c["stats"]["stats_messages_sent"] == first and c["stats"]["stats_recipients_total"] == 0, c["stats"]
    assert set(await ledger(pool, "chunks")) == set(ids[:first])

    proc.kill()
    proc.wait(30)

    async def chunk_gone() -> bool:  # PostgreSQL ends the dead process's backends
        return not await pool.fetchval("SELECT 1 FROM pg_stat_activity WHERE pid = $1", pid)
    await await_for(chunk_gone, timeout=60)
    # What the dead planner committed is kept; its second chunk and its counts are not.
    assert await pool.fetchval("SELECT count(*) FROM campaign_audience WHERE campaign_id = 'chunks'") == first
    assert not await pool.fetchval("SELECT count(*) FROM campaign_plans WHERE campaign_id = 'chunks'")
    await hold.release()

    done = await complete(api, "chunks")  # the worker's reap continues the copy after the first chunk
    assert done["stats"]["stats_recipients_total"] == N and done["stats"]["stats_messages_sent"] == N, done["stats"]
    assert set(await ledger(pool, "chunks")) == set(ids)
    per = await messages_per_recipient(pool, "chunks")
    assert set(per) == set(ids) and set(per.values()) == {1}
    rows = await pool.fetch("SELECT batch_no, after_id, upto_id, n FROM campaign_batches"
                            " WHERE campaign_id = 'chunks' ORDER BY batch_no")
    assert [r["batch_no"] for r in rows] == list(range(len(rows)))
    assert rows[0]["after_id"] is None and rows[-1]["upto_id"] == ids[-1]
    assert all(a["upto_id"] == b["after_id"] for a, b in zip(rows, rows[1:], strict=False))
    assert sum(r["n"] for r in rows) == N

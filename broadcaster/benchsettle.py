"""The bench's pause (not measured) before a compared run: the maintenance the earlier runs'
rows call for is done first, so that a campaign measured after another one does not also pay
for the vacuums and analyzes the other's million inserts set off (the rate of whichever run
came second took them, not the cost of its own options)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg

# The tables a campaign fills (0140_campaign_autovacuum.sql gives them their own thresholds).
FILLED = ("channels", "members", "messages", "campaign_recipients")
_RUNNING = ("SELECT query FROM pg_stat_activity WHERE backend_type = 'autovacuum worker' AND query <> ''")


async def settle(dsn: str, timeout_s: float = 120.0) -> dict[str, Any]:
    """Vacuum and analyze the filled tables and checkpoint now, then wait while an autovacuum
    worker still runs (at most timeout_s): the same maintenance autovacuum and the checkpointer
    would do in the next run, done before it. Returns the seconds it took and what autovacuum was seen doing."""
    conn = await asyncpg.connect(dsn)
    seen: set[str] = set()
    t0 = time.monotonic()
    try:
        await conn.execute(f"VACUUM (ANALYZE) {', '.join(FILLED)}")
        # and the checkpoint the earlier runs' WAL calls for: in funnel3's 1M run of 23:15
        # the import's and the plain run's WAL requested one in the funnel's first tenth,
        # whose checkpointer then wrote the plain run's dirty buffers through its first tenths
        await conn.execute("CHECKPOINT")
        while time.monotonic() - t0 < timeout_s:
            running = await conn.fetch(_RUNNING)
            if not running:
                break
            seen.update(" ".join(r["query"].removeprefix("autovacuum: ").split()[:3]) for r in running)
            await asyncio.sleep(0.5)
    finally:
        await conn.close()
    return {"settle_s": round(time.monotonic() - t0, 1), "waited_for": sorted(seen)}

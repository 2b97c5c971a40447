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
    """Vacuum and analyze the filled tables now, then wait while an autovacuum worker still
    runs (at most timeout_s): the same maintenance autovacuum would do in the next run, done
    before it. Returns the seconds it took and what autovacuum was seen doing."""
    conn = await asyncpg.connect(dsn)
    seen: set[str] = set()
    t0 = time.monotonic()
    try:
        await conn.execute(f"VACUUM (ANALYZE) {', '.join(FILLED)}")
        while time.monotonic() - t0 < timeout_s:
            running = await conn.fetch(_RUNNING)
            if not running:
                break
            seen.update(" ".join(r["query"].removeprefix("autovacuum: ").split()[:3]) for r in running)
            await asyncio.sleep(0.5)
    finally:
        await conn.close()
    return {"settle_s": round(time.monotonic() - t0, 1), "waited_for": sorted(seen)}

"""Recording what came of a set of attempts in one transaction: each result decided by the
pure rules (webhooks/policy.py), written set-based, and the rows that waited on the finished
ones released (store/deliveries.finish)."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence

import asyncpg

from broadcaster import metrics
from broadcaster.store import deliveries
from broadcaster.store import webhooks as store
from broadcaster.webhooks import policy
from broadcaster.webhooks.sender import Result

logger = logging.getLogger("broadcaster.webhooks")


async def record(
    pool: asyncpg.Pool, results: Sequence[Result], window_s: float, down: Callable[[int, str], bool],
) -> bool:
    """Record results; `down(app_id, receiver)` says whether the receiver is being probed
    (its retries are then due at once: the probes pace them). Returns whether rows waiting
    on these were released (the caller looks for due rows again at once)."""
    delivered: list[tuple[int, int]] = []
    retries: list[tuple[int, int, float, int | None, str | None]] = []
    failures: list[tuple[int, int, int | None, str | None]] = []
    released: set[store.Key] = set()
    for res in results:
        row = res.row
        d = (policy.Decision("failed") if res.final else
             policy.decide(res.status, row["attempt"], retry_after=res.retry_after,
                           series_age_s=row["age_s"], window_s=window_s, jitter=random.random()))
        metrics.WEBHOOK_DELIVERIES.labels(d.outcome).inc()
        if d.outcome == "delivered":
            delivered.append((row["id"], row["attempt"]))
        elif d.outcome == "retry":
            delay = d.delay
            if down(row["app_id"], row["receiver"]) and res.retry_after is None:
                delay = 0.0
            retries.append((row["id"], row["attempt"], delay, res.status, res.error))
        else:
            failures.append((row["id"], row["attempt"], res.status, res.error))
            logger.warning("webhook %s to %s failed for good: %s", row["webhook_id"], row["url"], res.error)
        if d.outcome != "retry" and row["campaign_id"]:
            released.add((row["app_id"], row["receiver"], row["campaign_id"]))
    try:
        async with pool.acquire() as conn, conn.transaction():
            await deliveries.finish(conn, delivered=delivered, retries=retries, failures=failures,
                                    released=sorted(released))
    except (asyncpg.PostgresError, OSError) as e:  # their leases run out: sent again later
        logger.warning("webhook results not recorded (%d): %s", len(results), e)
    return bool(released)

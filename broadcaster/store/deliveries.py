"""Webhook deliveries after routing: which receivers have due rows, claiming per receiver,
recording results, the failed list and replay, receivers ended by a settings change."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from broadcaster.store.webhooks import Conn, Key, Tx, order_lock, release

# Receivers with a due row: a skip scan over (app_id, receiver) of the due index, two index
# probes per receiver however many rows each has waiting.
DUE_RECEIVERS = """
WITH RECURSIVE r AS (
  (SELECT app_id, receiver FROM webhook_deliveries WHERE state = 'pending' AND NOT held
   ORDER BY app_id, receiver LIMIT 1)
  UNION ALL
  SELECT n.app_id, n.receiver FROM r CROSS JOIN LATERAL (
    SELECT d.app_id, d.receiver FROM webhook_deliveries d
    WHERE d.state = 'pending' AND NOT d.held AND (d.app_id, d.receiver) > (r.app_id, r.receiver)
    ORDER BY d.app_id, d.receiver LIMIT 1) n
)
SELECT r.app_id, r.receiver FROM r WHERE EXISTS (SELECT 1 FROM webhook_deliveries d
  WHERE d.app_id = r.app_id AND d.receiver = r.receiver AND d.state = 'pending' AND NOT d.held
  AND d.next_at <= now())
LIMIT $1"""

# Every transaction that changes several delivery rows locks them in id order first, so two
# of them (a worker recording results, a settings change re-pointing or ending a receiver's
# rows) wait for each other instead of deadlocking; each statement's own order is its plan's.
_LOCK_IDS = "SELECT id FROM webhook_deliveries WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE"

_CLAIMED = ("d.id, d.app_id, d.webhook_id, d.receiver, d.url, d.campaign_id, d.payload, d.attempt,"
            " extract(epoch FROM now() - d.series_started_at)::float8 AS age_s")


async def due_receivers(conn: Conn, limit: int = 10_000) -> list[tuple[int, str]]:
    rows = await conn.fetch(DUE_RECEIVERS, limit)
    return [(r["app_id"], r["receiver"]) for r in rows]


async def claim_for(
    conn: Conn, wants: Sequence[tuple[int, str, int]], lease_s: float,
) -> list[asyncpg.Record]:
    """Take up to n due rows of each (app_id, receiver, n) for one attempt each, oldest due
    first; the lease (next_at) gives them back if this worker dies before recording them."""
    if not wants:
        return []
    return await conn.fetch(
        "WITH c AS (SELECT x.id FROM unnest($1::bigint[], $2::text[], $3::int[]) AS k(app_id, receiver, n)"
        "  CROSS JOIN LATERAL (SELECT w.id FROM webhook_deliveries w"
        "   WHERE w.app_id = k.app_id AND w.receiver = k.receiver AND w.state = 'pending'"
        "   AND NOT w.held AND w.next_at <= now()"
        "   ORDER BY w.next_at LIMIT k.n FOR UPDATE SKIP LOCKED) x)"
        " UPDATE webhook_deliveries d SET attempt = d.attempt + 1,"
        "  next_at = now() + make_interval(secs => $4)"
        f" FROM c WHERE d.id = c.id RETURNING {_CLAIMED}",
        [w[0] for w in wants], [w[1] for w in wants], [w[2] for w in wants], lease_s,
    )


async def unclaim(conn: Conn, ids: Sequence[int]) -> None:
    """Give back claimed rows this worker will not send now (over the receiver's pace)."""
    if ids:
        await conn.execute(
            f"WITH l AS ({_LOCK_IDS}) UPDATE webhook_deliveries d SET attempt = d.attempt - 1,"
            " next_at = now() FROM l WHERE d.id = l.id AND d.state = 'pending'", list(ids),
        )


async def finish(
    conn: Tx, *, delivered: Sequence[tuple[int, int]],
    retries: Sequence[tuple[int, int, float, int | None, str | None]],
    failures: Sequence[tuple[int, int, int | None, str | None]], released: Sequence[Key],
) -> None:
    """Record results set-based, then let rows waiting on them go. Each result names the
    attempt it was for: one whose row was claimed again since (its lease ran out while the
    database was unreachable) or ended by a settings change is not applied over the newer
    state. Call in a transaction."""
    if released:
        await order_lock(conn)
    ids = [d[0] for d in delivered] + [r[0] for r in retries] + [f[0] for f in failures]
    if ids:
        await conn.execute(_LOCK_IDS, ids)
    if delivered:
        await conn.execute(
            "DELETE FROM webhook_deliveries d USING unnest($1::bigint[], $2::int[]) AS x(id, attempt)"
            " WHERE d.id = x.id AND d.attempt = x.attempt",
            [d[0] for d in delivered], [d[1] for d in delivered])
    if retries:
        await conn.execute(
            "UPDATE webhook_deliveries d SET next_at = now() + make_interval(secs => r.delay),"
            " last_status = r.status, last_error = r.error"
            " FROM unnest($1::bigint[], $2::int[], $3::float8[], $4::int[], $5::text[])"
            "  AS r(id, attempt, delay, status, error)"
            " WHERE d.id = r.id AND d.attempt = r.attempt AND d.state = 'pending'",
            [r[0] for r in retries], [r[1] for r in retries], [r[2] for r in retries],
            [r[3] for r in retries], [r[4] for r in retries],
        )
    if failures:
        await conn.execute(
            "UPDATE webhook_deliveries d SET state = 'failed', failed_at = now(), held = false,"
            " last_status = r.status, last_error = r.error"
            " FROM unnest($1::bigint[], $2::int[], $3::int[], $4::text[]) AS r(id, attempt, status, error)"
            " WHERE d.id = r.id AND d.attempt = r.attempt AND d.state = 'pending'",
            [r[0] for r in failures], [r[1] for r in failures], [r[2] for r in failures],
            [r[3] for r in failures],
        )
    if released:
        await release(conn, released)


_FAILED_PAGE = (
    "SELECT id, webhook_id, event_type, receiver, url, campaign_id, attempt, series,"
    " last_status, last_error, failed_at, created_at, payload"
    " FROM webhook_deliveries WHERE app_id = $1 AND state = 'failed' AND id {op} $2"
    " ORDER BY id {dir} LIMIT $3"
)


async def failed_page(
    conn: Conn, app_id: int, *, after: int | None, limit: int, before: int | None = None,
) -> list[asyncpg.Record]:
    """Failed deliveries in id order after `after`, or (with `before`) the ones just before
    it, nearest first (the pagination helper turns that page around)."""
    if before is not None:
        return await conn.fetch(_FAILED_PAGE.format(op="<", dir="DESC"), app_id, before, limit)
    return await conn.fetch(_FAILED_PAGE.format(op=">", dir="ASC"), app_id, after or 0, limit)


async def replay(
    conn: Conn, app_id: int, *, webhook_ids: Sequence[str] | None,
    since: datetime | None, receivers: dict[str, str],
) -> int:
    """Failed deliveries of the given (existing, enabled) receivers, receiver id -> current
    URL, back to pending with a new attempt series (same webhook_id), aimed at that URL."""
    n = await conn.fetchval(
        "WITH r AS (UPDATE webhook_deliveries d SET state = 'pending', held = false, attempt = 0,"
        "  series = series + 1, series_started_at = now(), next_at = now(), failed_at = NULL,"
        "  url = x.url FROM unnest($4::text[], $5::text[]) AS x(receiver, url)"
        " WHERE d.app_id = $1 AND d.state = 'failed' AND d.receiver = x.receiver"
        "  AND ($2::uuid[] IS NULL OR d.webhook_id = ANY($2::uuid[]))"
        "  AND ($3::timestamptz IS NULL OR d.failed_at >= $3)"
        " RETURNING 1) SELECT count(*) FROM r",
        app_id, list(webhook_ids) if webhook_ids is not None else None, since,
        list(receivers), list(receivers.values()),
    )
    return int(n or 0)


async def lock_receivers(conn: Tx, app_id: int, receivers: Sequence[str]) -> None:
    """Lock the pending rows of these receivers in id order, before end_receivers and
    repoint change them in the same transaction (see _LOCK_IDS)."""
    if receivers:
        await conn.execute(
            "SELECT id FROM webhook_deliveries WHERE app_id = $1 AND receiver = ANY($2::text[])"
            " AND state = 'pending' ORDER BY id FOR UPDATE", app_id, list(receivers))


async def repoint(conn: Tx, app_id: int, moved: dict[str, str]) -> int:
    """Pending deliveries of receivers whose URL a settings change replaced go to the new URL
    (their next attempt; one already claimed goes where it was claimed for). Call under the
    routing lock, so no delivery routed with the old settings commits after this."""
    n = await conn.fetchval(
        "WITH m AS (UPDATE webhook_deliveries d SET url = x.url"
        " FROM unnest($2::text[], $3::text[]) AS x(receiver, url)"
        " WHERE d.app_id = $1 AND d.receiver = x.receiver AND d.state = 'pending'"
        "  AND d.url <> x.url RETURNING 1) SELECT count(*) FROM m",
        app_id, list(moved), list(moved.values()),
    )
    return int(n or 0)


async def end_receivers(conn: Tx, app_id: int, ended: dict[str, str]) -> int:
    """Pending deliveries of receivers that were removed or disabled end as failed, with the
    reason as last_error. Returns how many."""
    n = await conn.fetchval(
        "WITH e AS (UPDATE webhook_deliveries d SET state = 'failed', failed_at = now(),"
        "  held = false, last_error = x.why"
        " FROM unnest($2::text[], $3::text[]) AS x(receiver, why)"
        " WHERE d.app_id = $1 AND d.receiver = x.receiver AND d.state = 'pending'"
        " RETURNING 1) SELECT count(*) FROM e",
        app_id, list(ended), list(ended.values()),
    )
    return int(n or 0)


async def purge_failed(conn: Conn, older_than_s: float, limit: int) -> int:
    """Delete up to `limit` failed deliveries that failed more than older_than_s ago, oldest
    first; rows another transaction holds (a replay) are skipped. Returns how many."""
    n = await conn.fetchval(
        "WITH p AS (DELETE FROM webhook_deliveries WHERE id IN ("
        "  SELECT id FROM webhook_deliveries WHERE state = 'failed'"
        "  AND failed_at < now() - make_interval(secs => $1)"
        "  ORDER BY failed_at LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING 1)"
        " SELECT count(*) FROM p",
        float(older_than_s), limit,
    )
    return int(n or 0)

"""Webhook deliveries: routing the outbox into per-receiver rows, claiming, finishing, replay.

Claiming, recording and the API's reads are in store/deliveries.py. Routing and the release
of held rows run under one advisory lock, so a delivery row can
never be created held after the row it waits for was finished (it would wait forever).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from broadcaster import secretbox

ORDER_LOCK = 0x7768_6F72_6472  # "whordr": routing and releasing held rows


@dataclass(frozen=True)
class NewDelivery:
    app_id: int
    event_id: int
    receiver: str
    url: str
    event_type: str
    campaign_id: str | None
    barrier: bool
    payload: str
    held: bool


Conn = asyncpg.Pool | asyncpg.Connection | PoolConnectionProxy
Tx = asyncpg.Connection | PoolConnectionProxy
Key = tuple[int, str, str]  # (app_id, receiver, campaign_id)


async def try_order_lock(conn: Tx) -> bool:
    return bool(await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", ORDER_LOCK))


async def order_lock(conn: Tx) -> None:
    await conn.execute("SELECT pg_advisory_xact_lock($1)", ORDER_LOCK)


async def app_settings(conn: Conn, app_ids: Sequence[int]) -> dict[int, Any]:
    rows = await conn.fetch(
        "SELECT id, api_key, api_secret, settings FROM apps WHERE id = ANY($1::bigint[])", list(app_ids)
    )
    # signatures use the current secret (after a rotation: the new one), stored sealed or plain
    return {r["id"]: {**dict(r), "api_secret": secretbox.reveal(r["api_secret"])} for r in rows}


async def pending_state(conn: Tx, keys: Sequence[Key]) -> dict[Key, tuple[bool, bool]]:
    """For keys with undelivered rows: (any pending, a campaign.* one pending)."""
    if not keys:
        return {}
    # two index probes per key, whatever the number of pending rows behind it
    rows = await conn.fetch(
        "SELECT k.app_id, k.receiver, k.campaign_id, x.has_any, y.has_fence"
        " FROM unnest($1::bigint[], $2::text[], $3::text[]) AS k(app_id, receiver, campaign_id)"
        " CROSS JOIN LATERAL (SELECT EXISTS (SELECT 1 FROM webhook_deliveries d"
        "  WHERE d.app_id = k.app_id AND d.receiver = k.receiver AND d.campaign_id = k.campaign_id"
        "  AND d.state = 'pending')) AS x(has_any)"
        " CROSS JOIN LATERAL (SELECT EXISTS (SELECT 1 FROM webhook_deliveries d"
        "  WHERE d.app_id = k.app_id AND d.receiver = k.receiver AND d.campaign_id = k.campaign_id"
        "  AND d.state = 'pending' AND d.barrier)) AS y(has_fence)",
        [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys],
    )
    return {(r["app_id"], r["receiver"], r["campaign_id"]): (True, bool(r["has_fence"]))
            for r in rows if r["has_any"]}


async def insert_deliveries(
    conn: Tx, rows: Sequence[NewDelivery], *, lease_s: float | None = None,
    claimed: Sequence[bool] | None = None,
) -> list[tuple[int, str]]:
    """Insert delivery rows; returns (id, webhook_id) in the order of `rows`. With lease_s,
    the rows marked in `claimed` (never held ones) are inserted already claimed for their
    first attempt (as deliveries.claim_for() would leave them), so the router can hand them to
    a sender without a claim."""
    if not rows:
        return []
    out = await conn.fetch(
        "INSERT INTO webhook_deliveries (app_id, event_id, receiver, url, event_type, campaign_id,"
        " barrier, payload, held, attempt, next_at)"
        " SELECT a, e, r, u, t, c, b, p, h,"
        "  CASE WHEN $10::float8 IS NOT NULL AND k AND NOT h THEN 1 ELSE 0 END,"
        "  CASE WHEN $10::float8 IS NOT NULL AND k AND NOT h THEN now() + make_interval(secs => $10)"
        "   ELSE now() END"
        " FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[],"
        " $6::text[], $7::bool[], $8::text[], $9::bool[], $11::bool[]) AS x(a, e, r, u, t, c, b, p, h, k)"
        " RETURNING id, webhook_id::text, event_id, receiver",
        [r.app_id for r in rows], [r.event_id for r in rows], [r.receiver for r in rows],
        [r.url for r in rows], [r.event_type for r in rows], [r.campaign_id for r in rows],
        [r.barrier for r in rows], [r.payload for r in rows], [r.held for r in rows], lease_s,
        list(claimed) if claimed is not None else [True] * len(rows),
    )
    # RETURNING order is not promised: map back by (event, receiver), unique per delivery
    ids = {(r["event_id"], r["receiver"]): (r["id"], r["webhook_id"]) for r in out}
    return [ids[(r.event_id, r.receiver)] for r in rows]


RELEASE_CHUNK = 2_000
_KEYS = "unnest($1::bigint[], $2::text[], $3::text[]) AS k(app_id, receiver, campaign_id)"
_SAME = "{t}.app_id = k.app_id AND {t}.receiver = k.receiver AND {t}.campaign_id = k.campaign_id"
# message events: free up to their key's first pending campaign.* event
RELEASE_MESSAGES = (
    "UPDATE webhook_deliveries SET held = false, next_at = now() WHERE id IN ("
    f" SELECT h.id FROM {_KEYS}"
    " CROSS JOIN LATERAL (SELECT min(b.event_id) AS fence FROM webhook_deliveries b"
    f"  WHERE {_SAME.format(t='b')} AND b.state = 'pending' AND b.barrier) f"
    " CROSS JOIN LATERAL (SELECT m.id FROM webhook_deliveries m"
    f"  WHERE {_SAME.format(t='m')} AND m.state = 'pending' AND m.held AND NOT m.barrier"
    "  AND m.event_id < coalesce(f.fence, 9223372036854775807)"  # an index bound, not a filter
    "  ORDER BY m.event_id LIMIT $4) h)"
)
# campaign.* events: free the one that is its key's first pending event
RELEASE_FENCES = (
    "UPDATE webhook_deliveries SET held = false, next_at = now() WHERE id IN ("
    f" SELECT b.id FROM {_KEYS}"
    " CROSS JOIN LATERAL (SELECT min(p.event_id) AS first FROM webhook_deliveries p"
    f"  WHERE {_SAME.format(t='p')} AND p.state = 'pending') f"
    f" JOIN webhook_deliveries b ON {_SAME.format(t='b')} AND b.state = 'pending' AND b.held"
    "  AND b.barrier AND b.event_id = f.first)"
)


async def release(conn: Tx, keys: Sequence[Key]) -> None:
    """Let held rows of these keys go once what they wait for is finished. Each statement
    costs index probes plus the rows it frees; messages are freed RELEASE_CHUNK at a time:
    delivering those finishes rows of the same key, which frees the next chunk."""
    a, r, c = [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys]
    await conn.execute(RELEASE_MESSAGES, a, r, c, RELEASE_CHUNK)
    await conn.execute(RELEASE_FENCES, a, r, c)

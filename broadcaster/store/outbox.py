"""The webhook outbox: events are added inside the transaction of the change causing them,
and read back by the router (webhooks/dispatch.py) per app, in id order.

Three kinds of rows: a full event body (campaign.* events, add/add_many); a reference
written before migration 0130 ({"ref": message id or cid, "user", "at"}); and one row per
campaign batch (event_type 'batch', store/fanwrite.py: {"p": the batch's message id prefix,
"m": its messages' row numbers, "c": the cids it created, "user", "at"}), which expands into
the batch's channel.created events, then its message.new events. Expanded bodies are built
from the rows they name, the same JSON a full body had; a message or channel deleted before
routing leaves a body with just its id.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

from broadcaster.ids import SEQ_HEX


@dataclass(frozen=True)
class OutboxEvent:
    id: int  # the outbox row (a batch row yields many events)
    app_id: int
    event_type: str
    campaign_id: str | None
    payload: str


async def add(
    conn: asyncpg.Connection, app_id: int, event_type: str, payload: dict[str, Any],
    campaign_id: str | None = None,
) -> None:
    await conn.execute(
        "INSERT INTO outbox (app_id, event_type, campaign_id, payload) VALUES ($1, $2, $3, $4)",
        app_id, event_type, campaign_id, payload,
    )


async def add_many(
    conn: asyncpg.Connection, app_id: int, campaign_id: str | None,
    events: Sequence[tuple[str, bytes | dict[str, Any]]],
) -> None:
    """Set-based insert of (event_type, payload) pairs; payloads may be pre-serialised JSON."""
    if not events:
        return
    types = [t for t, _ in events]
    bodies = [p.decode() if isinstance(p, bytes) else orjson.dumps(p).decode() for _, p in events]
    await conn.execute(
        "INSERT INTO outbox (app_id, event_type, campaign_id, payload)"
        " SELECT $1, t, $2, p::jsonb FROM unnest($3::text[], $4::text[]) AS x(t, p)",
        app_id, campaign_id, types, bodies,
    )


async def depth(conn: asyncpg.Pool | asyncpg.Connection) -> int:
    """Events not yet delivered (the outbox depth gauge of /metrics): not yet routed to their
    receivers, plus deliveries still pending (webhook_deliveries, broadcaster/migrations/0006)."""
    return int(await conn.fetchval(
        "SELECT (SELECT coalesce(sum(events), 0) FROM outbox)"
        " + (SELECT count(*) FROM webhook_deliveries WHERE state = 'pending')"
    ))


# Apps with outbox rows: a skip scan over outbox_app_id (migration 0130).
_APPS = """WITH RECURSIVE a AS (
  (SELECT app_id FROM outbox ORDER BY app_id LIMIT 1)
  UNION ALL
  SELECT (SELECT o.app_id FROM outbox o WHERE o.app_id > a.app_id ORDER BY o.app_id LIMIT 1)
  FROM a WHERE a.app_id IS NOT NULL
) SELECT app_id FROM a WHERE app_id IS NOT NULL"""


async def apps(conn: Any) -> list[int]:
    return [r[0] for r in await conn.fetch(_APPS)]


async def take(conn: Any, budgets: Mapping[int, int]) -> list[int]:
    """Lock each app's oldest rows in id order, up to its budget of events (at least one row
    per app: a batch row is never split). Call in the routing transaction."""
    if not budgets:
        return []
    rows = await conn.fetch(
        "SELECT k.app_id, o.id, o.events FROM unnest($1::bigint[], $2::int[]) AS k(app_id, budget)"
        " CROSS JOIN LATERAL (SELECT id, events FROM outbox WHERE app_id = k.app_id"
        "  ORDER BY id LIMIT k.budget FOR UPDATE SKIP LOCKED) o ORDER BY k.app_id, o.id",
        list(budgets), list(budgets.values()),
    )
    out: list[int] = []
    spent: dict[int, int] = {}
    full: set[int] = set()
    for r in rows:
        used = spent.get(r["app_id"], 0)
        # An app's rows stop at the first that does not fit: taking a later, smaller row (a
        # campaign.completed behind a batch row) would route it before the events it follows.
        if r["app_id"] in full or (used and used + r["events"] > budgets[r["app_id"]]):
            full.add(r["app_id"])
            continue
        spent[r["app_id"]] = used + r["events"]
        out.append(r["id"])
    return out


# Each row as its events: (k, n) orders a batch row's channel.created before its message.new.
# A batch row's payload is TOASTed: its parts are read once per row (the materialized r), not
# once per event (each read of o.payload per event detoasted it whole: 3.3 s for 4,000).
_EVENTS = f"""WITH r AS MATERIALIZED (
  SELECT o.id, o.app_id, o.campaign_id, o.event_type, o.payload->'user' AS usr, o.payload->'at' AS at,
    o.payload->>'p' AS p, o.payload->>'ref' AS ref,
    CASE WHEN o.event_type = 'batch' THEN o.payload->'c' END AS c,
    CASE WHEN o.event_type = 'batch' THEN o.payload->'m' END AS m,
    CASE WHEN o.event_type <> 'batch' AND NOT (o.payload ? 'ref') THEN o.payload END AS body
  FROM outbox o WHERE o.id = ANY($1::bigint[])
), e AS (
  SELECT r.id, r.app_id, r.campaign_id, x.k, x.n, x.typ, x.ref, r.usr, r.at, r.body
  FROM r CROSS JOIN LATERAL (
    SELECT 0 AS k, 0::bigint AS n, r.event_type AS typ, r.ref WHERE r.event_type <> 'batch'
    UNION ALL
    SELECT 1, c.n, 'channel.created', c.ref FROM jsonb_array_elements_text(r.c) WITH ORDINALITY AS c(ref, n)
    UNION ALL
    SELECT 2, m.n, 'message.new', r.p || lpad(to_hex(m.v::int), {SEQ_HEX}, '0')
    FROM jsonb_array_elements_text(r.m) WITH ORDINALITY AS m(v, n)) x
)"""
_BODY = """CASE WHEN e.body IS NOT NULL THEN e.body
  WHEN e.typ = 'message.new' AND m.id IS NOT NULL THEN jsonb_build_object(
    'type', 'message.new', 'cid', m.cid, 'channel_type', split_part(m.cid, ':', 1),
    'channel_id', substr(m.cid, strpos(m.cid, ':') + 1),
    'message', m.custom || jsonb_build_object('id', m.id, 'text', m.text, 'type', 'regular',
      'user', e.usr, 'cid', m.cid, 'attachments', m.attachments,
      'campaign_id', m.campaign_id, 'created_at', e.at, 'updated_at', e.at),
    'user', e.usr, 'created_at', e.at)
  WHEN e.typ = 'channel.created' AND c.cid IS NOT NULL THEN jsonb_build_object(
    'type', 'channel.created', 'cid', c.cid, 'channel_type', c.type, 'channel_id', c.id,
    'channel', c.custom || jsonb_build_object('id', c.id, 'type', c.type, 'cid', c.cid,
      'created_by', e.usr, 'created_at', e.at, 'updated_at', e.at),
    'user', e.usr, 'created_at', e.at)
  WHEN e.typ = 'message.new' THEN jsonb_build_object('type', e.typ,
    'message', jsonb_build_object('id', e.ref), 'user', e.usr, 'created_at', e.at)
  ELSE jsonb_build_object('type', e.typ, 'cid', e.ref, 'user', e.usr, 'created_at', e.at) END"""
# LATERAL ... LIMIT 1 stays one primary-key probe per event (a join could be planned as a
# scan of millions of messages for a few thousand events).
_REFS = """LEFT JOIN LATERAL (SELECT * FROM messages m WHERE e.typ = 'message.new' AND e.body IS NULL
    AND m.app_id = e.app_id AND m.id = e.ref LIMIT 1) m ON true
  LEFT JOIN LATERAL (SELECT * FROM channels c WHERE e.typ = 'channel.created' AND e.body IS NULL
    AND c.app_id = e.app_id AND c.cid = e.ref LIMIT 1) c ON true"""


async def events(conn: Any, ids: Sequence[int]) -> list[OutboxEvent]:
    """The events of these (locked) rows in event order. The references are probed by primary
    key, forced for the rest of the transaction, and planned afresh each time: a cached plan
    made while a campaign was filling messages from empty scanned the whole table once per
    event (30 s and more per batch, after the table had grown)."""
    if not ids:
        return []
    await conn.execute("SELECT set_config('enable_seqscan', 'off', true),"
                       " set_config('plan_cache_mode', 'force_custom_plan', true)")
    rows = await conn.fetch(
        f"{_EVENTS} SELECT e.id, e.app_id, e.typ, e.campaign_id, ({_BODY})::text AS payload"
        f" FROM e {_REFS} ORDER BY e.id, e.k, e.n", list(ids),
    )
    return [OutboxEvent(r["id"], r["app_id"], r["typ"], r["campaign_id"], r["payload"]) for r in rows]


async def consume(conn: Any, ids: Sequence[int]) -> None:
    await conn.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", list(ids))


async def event_ids(conn: Any, n: int) -> list[int]:
    """n consecutive delivery event ids (the ordering key), above every id drawn before. Only
    the router draws them, under the routing lock (store/webhooks.py ORDER_LOCK)."""
    if n <= 0:
        return []
    last = int(await conn.fetchval(
        "SELECT setval('webhook_event_ids', nextval('webhook_event_ids') + $1 - 1)", n))
    return list(range(last - n + 1, last + 1))

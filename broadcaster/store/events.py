"""Events for triggered campaigns: recording, set-based matching, dispatch into the audience."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from broadcaster import filters
from broadcaster.domain import triggers
from broadcaster.store import occurrences, recipients
from broadcaster.store.ledger import Conn, Tx

RETENTION = "7 days"  # an id de-duplicates for this long
# A paused campaign goes on matching: its triggers wait (dispatch sends only while it is in
# progress) and are sent after resume, so events of the pause are not lost.
LISTENING = "('in_progress', 'paused')"


async def record(conn: Conn, app_id: int, rows: Sequence[tuple[str, str, str, Any, Any]]) -> set[str]:
    """Insert (id, type, user_id, data, created_at|None) rows in one statement; returns the ids
    that were new (the others were recorded before: duplicates)."""
    got = await conn.fetch(
        "INSERT INTO events (app_id, id, type, user_id, data, created_at)"
        " SELECT $1, i, t, u, d, coalesce(c, now())"
        " FROM unnest($2::text[], $3::text[], $4::text[], $5::jsonb[], $6::timestamptz[]) AS x(i, t, u, d, c)"
        " ON CONFLICT DO NOTHING RETURNING id",
        app_id, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows],
        [r[4] for r in rows])
    return {r[0] for r in got}


def event_sql(listened: Sequence[str], rows_cte: str, type_sql: str, user_sql: str, data_sql: str) -> str:
    """An INSERT of one event per row of `rows_cte` (rows just written by the same
    statement), only while the app ($1) has an in_progress triggered campaign listening to
    one of `listened`: the chat writes pay nothing otherwise."""
    names = ", ".join(f"'{t}'" for t in listened)  # constants of this module's callers
    return (
        f"INSERT INTO events (app_id, id, type, user_id, data)"
        f" SELECT $1, gen_random_uuid()::text, {type_sql}, {user_sql}, {data_sql} FROM {rows_cte} w"
        f" WHERE {user_sql} IS NOT NULL AND {user_sql} <> '' AND EXISTS (SELECT 1 FROM campaigns c WHERE c.app_id = $1 AND c.type = 'triggered'"
        f" AND c.status IN {LISTENING} AND c.trigger->>'event' IN ({names}))")


def user_events_sql(rows_cte: str, data_sql: str, type_sql: str) -> str:
    """user.created / user.updated for the users of `rows_cte` (with their id)."""
    return event_sql(("user.created", "user.updated"), rows_cte, type_sql, "w.id", data_sql)


async def listening(conn: Conn, app_id: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT id, trigger, delay, user_ids, segment_ids, sender_id, once_per_user FROM campaigns WHERE app_id = $1"
        f" AND type = 'triggered' AND status IN {LISTENING} AND parent_id IS NULL", app_id)


async def listens_to_users(conn: Conn, app_id: int) -> bool:
    """Whether a triggered campaign of the app listens to user.created/user.updated (the live
    campaigns' partial index serves it)."""
    return bool(await conn.fetchval(
        "SELECT 1 FROM campaigns WHERE app_id = $1 AND type = 'triggered' AND status IN ('in_progress', 'paused')"
        " AND trigger->>'event' IN ('user.created', 'user.updated') LIMIT 1", app_id))


async def apps_with_pending(conn: Conn) -> list[int]:
    rows = await conn.fetch("SELECT DISTINCT app_id FROM events WHERE NOT processed")
    return [int(r[0]) for r in rows]


async def take_pending(conn: Tx, app_id: int, limit: int) -> list[str]:
    """Call in a transaction: unprocessed events of the app, oldest first, locked (SKIP
    LOCKED: concurrent jobs take different events)."""
    rows = await conn.fetch(
        "SELECT id FROM events WHERE app_id = $1 AND NOT processed ORDER BY recorded_at, id"
        " LIMIT $2 FOR UPDATE SKIP LOCKED", app_id, limit)
    return [r[0] for r in rows]


# The event as a trigger filter sees it (domain/triggers.EVENT_SCHEMA): data and the user's
# current fields, built per matching event only (after the type condition).
_DOC = ("CROSS JOIN LATERAL (SELECT jsonb_build_object('type', e.type, 'user_id', e.user_id, 'data', e.data,"
        " 'user', coalesce((SELECT u.custom || jsonb_build_object('id', u.id, 'name', u.name, 'role', u.role,"
        " 'language', u.language, 'teams', to_jsonb(u.teams)) FROM users u WHERE u.app_id = e.app_id"
        " AND u.id = e.user_id), '{}'::jsonb)) AS doc) x")


async def match(conn: Tx, app_id: int, camp: asyncpg.Record, ids: list[str]) -> int:
    """One statement: the campaign's matches among these events become trigger rows (once per
    (campaign, event)); with once_per_user, a user triggered before (or twice in this set) is
    skipped `already_sent_to_user` (without, each is sent: store/occurrences.py). Returns the
    number of matches."""
    trig = camp["trigger"] or {}
    params = filters.Params([app_id, camp["id"], ids, trig.get("event"), triggers.delay_seconds(camp["delay"]),
                             camp["sender_id"], bool(camp["once_per_user"])])
    cond = filters.compile_filter(trig.get("filter") or {}, triggers.EVENT_SCHEMA, params, field="trigger.filter")
    if camp["user_ids"]:
        cond += f" AND e.user_id = ANY({params.add(list(camp['user_ids']))}::text[])"
    if camp["segment_ids"]:  # only the segments' users can be triggered
        members = await recipients.members_sql(conn, app_id, list(camp["segment_ids"]), params)
        cond += f" AND e.user_id IN ({members})" if members else " AND false"
    n = await conn.fetchval(
        "WITH m AS (SELECT e.id, e.user_id, e.created_at,"
        "  row_number() OVER (PARTITION BY e.user_id ORDER BY e.created_at, e.id) AS rn"
        f" FROM events e {_DOC} WHERE e.app_id = $1 AND e.id = ANY($3::text[]) AND e.type = $4"
        f" AND e.user_id <> $6 AND ({cond})),"
        " ins AS (INSERT INTO campaign_triggers (app_id, campaign_id, event_id, user_id, due_at, status, reason)"
        " SELECT $1, $2, m.id, m.user_id, now() + make_interval(secs => $5),"
        "  CASE WHEN m.first THEN 'pending' ELSE 'skipped' END,"
        "  CASE WHEN NOT m.first THEN 'already_sent_to_user' END"
        " FROM (SELECT m.*, NOT $7 OR (m.rn = 1 AND NOT EXISTS (SELECT 1 FROM campaign_triggers t WHERE t.app_id = $1"
        "   AND t.campaign_id = $2 AND t.user_id = m.user_id AND t.status <> 'skipped')) AS first FROM m) m"
        " ON CONFLICT DO NOTHING RETURNING 1)"
        " SELECT count(*) FROM ins", *params.values)
    if n:
        await conn.execute("UPDATE campaigns SET times_triggered = times_triggered + $3 WHERE app_id = $1 AND id = $2",
                           app_id, camp["id"], int(n))
    return int(n or 0)


async def mark_processed(conn: Tx, app_id: int, ids: list[str]) -> None:
    await conn.execute("UPDATE events SET processed = true WHERE app_id = $1 AND id = ANY($2::text[])", app_id, ids)


async def due_campaigns(conn: Conn) -> list[asyncpg.Record]:
    """Listening campaigns with a due trigger (the partial index on pending triggers)."""
    return await conn.fetch(
        "SELECT DISTINCT t.app_id, t.campaign_id FROM campaign_triggers t JOIN campaigns c"
        " ON c.app_id = t.app_id AND c.id = t.campaign_id AND c.status = 'in_progress'"
        " WHERE t.status = 'pending' AND t.due_at <= now()")


async def append_due(conn: Tx, app_id: int, cid: str, limit: int, lease_s: float) -> tuple[int | None, bool]:
    """once_per_user: in a transaction holding the campaign row and no open batch, the due
    triggers' users join the audience (its primary key keeps a user once: a user already in
    it is skipped already_sent_to_user) and one batch covers them (occurrences.batch_over).
    Returns (the batch number, or None when no user was new; whether more may be due)."""
    r = await conn.fetchrow(
        "WITH due AS (SELECT event_id, user_id FROM campaign_triggers WHERE app_id = $1 AND campaign_id = $2"
        "  AND status = 'pending' AND due_at <= now() ORDER BY due_at, event_id LIMIT $3 FOR UPDATE),"
        " first AS (SELECT DISTINCT ON (user_id) event_id, user_id FROM due ORDER BY user_id, event_id),"
        " ins AS (INSERT INTO campaign_audience (app_id, campaign_id, target_id)"
        "  SELECT $1, $2, user_id FROM first ON CONFLICT DO NOTHING RETURNING target_id),"
        " sent AS (SELECT f.event_id FROM first f JOIN ins ON ins.target_id = f.user_id),"
        " upd AS (UPDATE campaign_triggers t SET"
        "  status = CASE WHEN t.event_id IN (SELECT event_id FROM sent) THEN 'queued' ELSE 'skipped' END,"
        "  reason = CASE WHEN t.event_id IN (SELECT event_id FROM sent) THEN NULL ELSE 'already_sent_to_user' END,"
        "  occurrence = CASE WHEN t.event_id IN (SELECT event_id FROM sent) THEN 1 END"
        "  FROM due WHERE t.app_id = $1 AND t.campaign_id = $2 AND t.event_id = due.event_id)"
        " SELECT (SELECT min(target_id) FROM ins) AS lo, (SELECT max(target_id) FROM ins) AS hi,"
        "  (SELECT count(*) FROM ins) AS n, (SELECT count(*) FROM due) AS taken,"
        "  ARRAY(SELECT event_id FROM sent) AS sent", app_id, cid, limit)
    assert r is not None
    more = int(r["taken"]) >= limit
    if not r["n"]:
        return None, more
    no = await occurrences.batch_over(conn, app_id, cid, r["lo"], r["hi"], int(r["n"]), lease_s)
    await conn.execute("UPDATE campaign_triggers SET batch_no = $3 WHERE app_id = $1 AND campaign_id = $2"
                       " AND event_id = ANY($4::text[])", app_id, cid, no, list(r["sent"]))
    return no, more


async def purge(conn: Conn, limit: int = 10_000) -> None:
    await conn.execute(
        f"DELETE FROM events WHERE ctid = ANY(ARRAY(SELECT ctid FROM events WHERE recorded_at < now() - interval"
        f" '{RETENTION}' AND processed LIMIT $1))", limit)


async def delete_for(conn: Tx, app_id: int, cid: str) -> None:
    await conn.execute("DELETE FROM campaign_triggers WHERE app_id = $1 AND campaign_id = $2", app_id, cid)

"""Audience resolution for the campaign runner: keyset pages of the distinct recipients of
one or several segments, never the whole audience in memory.

Every page is a union of per-segment index range scans (`id > after ORDER BY id LIMIT n`),
merged in order, so a call costs the same at any depth (sorts are priced out: see
targets.fetch_index_ordered). Ids ascend in the database's text order (the
default collation of every text key involved: users.id, channels.cid, targets.target_id).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import asyncpg

from broadcaster.errors import bad_request, not_found
from broadcaster.store import segments, targets
from broadcaster.store.segments import SegmentRow, Tx


@dataclass(frozen=True)
class Audience:
    app_id: int
    kind: Literal["user", "channel"]
    segment_ids: tuple[str, ...]
    sender_id: str | None


async def load_audience(
    conn: segments.Conn, app_id: int, segment_ids: Sequence[str],
    sender_id: str | None,
) -> Audience:
    ids = list(dict.fromkeys(segment_ids))
    if not ids:
        raise bad_request("segment_ids must hold at least one segment id")
    rows = await segments.get_many(conn, app_id, ids)
    found = {r.id for r in rows}
    for sid in ids:
        if sid not in found:
            raise not_found(f"segment {sid!r}")
    types = sorted({r.type for r in rows})
    if len(types) > 1:
        users = [r.id for r in rows if r.type == "user"][:3]
        chans = [r.id for r in rows if r.type == "channel"][:3]
        raise bad_request(
            f"segment_ids mix user segments {users} and channel segments {chans}: use one type"
        )
    kind: Literal["user", "channel"] = "user" if types[0] == "user" else "channel"
    return Audience(app_id, kind, tuple(ids), sender_id)


def _segment_select(
    seg: SegmentRow, audience: Audience, params: Any, bounds: list[str], limit_sql: str
) -> str | None:
    """One ordered range scan yielding `id` for this segment, or None when it yields nothing."""
    from broadcaster import filters  # contract 1: lands separately; imported where used

    if seg.explicit:
        col, src = "target_id", f"segment_targets WHERE seg = {params.add(seg.key)}"
    elif seg.type == "user":
        src = f"users WHERE app_id = {params.add(audience.app_id)} AND deleted_at IS NULL"
        col = "id"
        if seg.filter is not None:
            src += " AND (" + filters.compile_filter(seg.filter, filters.USER_SCHEMA, params) + ")"
    elif seg.all_sender_channels:
        if audience.sender_id is None:
            return None
        col = "cid"
        src = (f"members WHERE app_id = {params.add(audience.app_id)}"
               f" AND user_id = {params.add(audience.sender_id)}")
    else:
        col = "cid"
        src = f"channels WHERE app_id = {params.add(audience.app_id)} AND deleted_at IS NULL"
        src += " AND (" + filters.compile_filter(seg.filter or {}, filters.CHANNEL_SCHEMA, params) + ")"
    conds = [b.replace("{col}", col) for b in bounds]
    if audience.kind == "user" and audience.sender_id is not None:
        conds.append(f"{col} <> {params.add(audience.sender_id)}")
    where = "".join(f" AND {c}" for c in conds)
    return f"SELECT {col} AS id FROM {src}{where} ORDER BY {col}{limit_sql}"


def _union_sql(
    rows: list[SegmentRow], audience: Audience, params: Any, after: str | None,
    upto: str | None, limit: int | None,
) -> str | None:
    """The distinct ordered ids of the audience in (after, upto] as one SQL text (None: empty)."""
    bounds: list[str] = []
    if after is not None:
        bounds.append("{col} > " + params.add(after))
    if upto is not None:
        bounds.append("{col} <= " + params.add(upto))
    limit_sql = f" LIMIT {params.add(limit)}" if limit is not None else ""
    subs = [s for seg in rows if (s := _segment_select(seg, audience, params, bounds, limit_sql))]
    if not subs:
        return None
    if len(subs) == 1:
        return subs[0]
    union = " UNION ALL ".join(f"({s})" for s in subs)
    return f"SELECT DISTINCT id FROM ({union}) u ORDER BY id{limit_sql}"


async def members_sql(conn: segments.Conn, app_id: int, segment_ids: list[str], params: Any) -> str | None:
    """SQL yielding the ids of the users in these user segments (None: nobody), its
    parameters added to `params` (a triggered campaign's restriction)."""
    rows = [r for r in await segments.get_many(conn, app_id, segment_ids) if r.type == "user"]
    return _union_sql(rows, Audience(app_id, "user", tuple(segment_ids), None), params, None, None, None)


async def _run(
    conn: segments.Conn, audience: Audience, after: str | None,
    upto: str | None, limit: int | None,
) -> list[str]:
    from broadcaster import filters

    rows = await segments.get_many(conn, audience.app_id, list(audience.segment_ids))
    params = filters.Params()
    sql = _union_sql(rows, audience, params, after, upto, limit)
    if sql is None:
        return []
    return [r[0] for r in await targets.fetch_index_ordered(conn, sql, params.values)]


# One statement fixes the audience: the distinct ordered ids are numbered once (a window over
# the already ordered merge of index scans: no sort), copied into campaign_audience, and
# every batch_size-th id (and the last) becomes a batch boundary (after, upto] with its size.
_FIX = """
WITH src AS MATERIALIZED (
  SELECT s.id, row_number() OVER (ORDER BY s.id) AS rn FROM ({source}) s
), ins AS (
  INSERT INTO campaign_audience (app_id, campaign_id, target_id) SELECT $1, $2, id FROM src
), total AS (
  SELECT count(*) AS n FROM src
), bounds AS (
  SELECT src.id, src.rn FROM src, total WHERE src.rn % $3 = 0 OR src.rn = total.n
), b AS (
  INSERT INTO campaign_batches (app_id, campaign_id, batch_no, after_id, upto_id, n, lease_until)
  SELECT $1, $2, row_number() OVER w - 1, lag(id) OVER w, id, rn - coalesce(lag(rn) OVER w, 0),
         now() + make_interval(secs => $4)
  FROM bounds WINDOW w AS (ORDER BY rn)
  RETURNING 1
)
SELECT (SELECT n FROM total) AS recipients, (SELECT count(*) FROM b) AS batches
"""


async def fix(
    conn: Tx, app_id: int, campaign_id: str, *, kind: str, segment_ids: Sequence[str],
    user_ids: Sequence[str], sender_id: str, batch_size: int, lease_s: float,
    snapshot: bool = False, timeout: float | None = None,
) -> tuple[int, int]:
    """Fix a starting campaign's audience and its batch boundaries, inside the caller's
    transaction; returns (recipients, batches).

    snapshot: the caller's transaction is REPEATABLE READ with its snapshot taken before
    the start (services/planning.py): that snapshot is the consistent state, nothing is
    locked (and nothing could be: a segment row changed since would refuse the lock).
    Otherwise (the transaction that makes the campaign in_progress) the segments are locked
    FOR SHARE first: target additions and removals (which update their segment row) wait
    for this transaction, so the audience is one consistent state. timeout: the copy's own
    bound in seconds instead of the connection's command timeout."""
    from broadcaster import filters

    params = filters.Params([app_id, campaign_id, batch_size, float(lease_s)])
    if user_ids:
        source = (f"SELECT DISTINCT u AS id FROM unnest({params.add(list(user_ids))}::text[]) u"
                  f" WHERE u <> {params.add(sender_id)}")
    else:
        if not snapshot:
            await conn.execute(
                "SELECT 1 FROM segments WHERE app_id = $1 AND id = ANY($2::text[]) FOR SHARE",
                app_id, list(segment_ids))
        rows = await segments.get_many(conn, app_id, list(segment_ids))
        aud = Audience(app_id, "user" if kind == "user" else "channel", tuple(segment_ids), sender_id)
        sql = _union_sql(rows, aud, params, None, None, None)
        source = sql if sql is not None else "SELECT NULL::text AS id WHERE false"
    try:
        # As targets.fetch_index_ordered (sorts and bitmap scans priced out: fresh imports have
        # no statistics), in a savepoint that a refused cast rolls back, settings included.
        async with conn.transaction():
            prev = await conn.fetchrow(
                "SELECT current_setting('enable_sort') AS s, current_setting('enable_bitmapscan') AS b,"
                " set_config('enable_sort', 'off', true), set_config('enable_bitmapscan', 'off', true)")
            assert prev is not None
            r = await conn.fetchrow(_FIX.format(source=source), *params.values, timeout=timeout)
            assert r is not None
            await conn.execute("SELECT set_config('enable_sort', $1, true), set_config('enable_bitmapscan', $2, true)",
                               prev["s"], prev["b"])
    except asyncpg.DataError as e:
        # A stored value the filter cannot compare (a cast PostgreSQL refuses): the campaign
        # does not start, rather than failing later.
        raise bad_request(
            f"the audience of segments {list(segment_ids)} cannot be evaluated: {e}") from None
    return int(r["recipients"]), int(r["batches"])


async def page(
    conn: segments.Conn, audience: Audience, *, after: str | None, limit: int
) -> list[str]:
    """The next `limit` distinct target ids greater than `after`, ascending."""
    if limit < 1:
        return []
    return await _run(conn, audience, after, None, limit)


async def range_ids(
    conn: segments.Conn, audience: Audience, *, after: str | None, upto: str
) -> list[str]:
    """Every distinct target id in (after, upto], ascending."""
    return await _run(conn, audience, after, upto, None)

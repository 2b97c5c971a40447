"""Explicit segment targets: set-based add/delete with an exact size, keyset pages.

Rows are (seg, target_id, created_at) with PRIMARY KEY (seg, target_id) INCLUDE (created_at)
and an index (seg, created_at, target_id): every page, whatever its depth, is one index
range scan bounded by the keyset position, never a sort or an offset.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from broadcaster import filters
from broadcaster.errors import bad_request
from broadcaster.store import segments
from broadcaster.store.segments import SegmentRow

# Timestamps are formatted by PostgreSQL: 10,000 Python strftime calls would cost more than
# the whole index scan.
CREATED_AT_TEXT = """to_char(t.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""
SORT_FIELDS = ("target_id", "created_at")


def _nonexplicit(seg: SegmentRow) -> Exception:
    return bad_request(
        f"segment {seg.id!r} is a {seg.kind} segment: targets can only be added to or deleted"
        " from an explicit target list (a segment without filter, all_users or all_sender_channels)"
    )


async def add(conn: segments.Tx, app_id: int, segment_id: str, ids: list[str]) -> tuple[SegmentRow, int]:
    """Insert ids (duplicates ignored) in one statement; size moves by the count inserted.

    The segment row is locked first, so concurrent calls on one segment keep size exact."""
    async with conn.transaction():
        seg = await segments.get(conn, app_id, segment_id, for_update=True)
        if not seg.explicit:
            raise _nonexplicit(seg)
        # An anti-join, not ON CONFLICT: the row lock above serialises every writer of this
        # segment's targets, and speculative insertion costs ~30 % more. Sorted input walks
        # both indexes in order instead of hopping around them.
        status = await conn.execute(
            "INSERT INTO segment_targets (seg, target_id)"
            " SELECT $1, x FROM (SELECT DISTINCT x FROM unnest($2::text[]) x) s"
            " WHERE NOT EXISTS (SELECT 1 FROM segment_targets t WHERE t.seg = $1 AND t.target_id = s.x)"
            " ORDER BY x",
            seg.key, ids,
        )
        n = int(status.rsplit(" ", 1)[-1])
        if n:
            await conn.execute("UPDATE segments SET size = size + $2 WHERE key = $1", seg.key, n)
    return seg, n


async def remove(conn: segments.Tx, app_id: int, segment_id: str, ids: list[str]) -> tuple[SegmentRow, int]:
    async with conn.transaction():
        seg = await segments.get(conn, app_id, segment_id, for_update=True)
        if not seg.explicit:
            raise _nonexplicit(seg)
        status = await conn.execute(
            "DELETE FROM segment_targets WHERE seg = $1 AND target_id = ANY($2::text[])", seg.key, ids
        )
        n = int(status.rsplit(" ", 1)[-1])
        if n:
            await conn.execute("UPDATE segments SET size = size - $2 WHERE key = $1", seg.key, n)
    return seg, n


async def get(conn: segments.Conn, seg_key: int, target_id: str) -> dict[str, Any] | None:
    r = await conn.fetchrow(
        f"SELECT target_id, {CREATED_AT_TEXT} AS created_at FROM segment_targets t"
        " WHERE seg = $1 AND target_id = $2",
        seg_key, target_id,
    )
    return dict(r) if r else None


async def purge(conn: segments.Conn, seg_key: int, batch: int = 50_000) -> int:
    """Delete the targets of a deleted segment in bounded chunks (idempotent)."""
    if await conn.fetchval("SELECT 1 FROM segments WHERE key = $1", seg_key):
        return 0  # still a live segment: never purge it
    total = 0
    while True:
        status = await conn.execute(
            "DELETE FROM segment_targets WHERE seg = $1 AND target_id IN"
            " (SELECT target_id FROM segment_targets WHERE seg = $1 LIMIT $2)",
            seg_key, batch,
        )
        n = int(status.rsplit(" ", 1)[-1])
        total += n
        if n < batch:
            return total


# ---- the targets/query page (pure compilation + one query) ----

TARGET_SCHEMA = filters.Schema(columns={
    "target_id": filters.Column("t.target_id", "text"),
    "created_at": filters.Column("t.created_at", "time"),
})


def compile_filter(flt: Any, params: list[Any], *, path: str = "filter") -> list[str]:
    """SQL conditions for a filter of the whole language (SPEC 2) on target_id and created_at.

    params already holds $1 (the segment key); placeholders continue after it. Comparisons
    ($eq $gt $gte $lt $lte, and $in) AND-ed at the top level on the sort key become bounds of
    the page's index range scan; everything else ($or, $nor, $ne, $nin, $autocomplete,
    $exists, and conditions on the other field) is checked on the rows that range scan walks."""
    if flt is None or flt == {}:
        return []
    p = filters.Params(start=params)
    sql = filters.compile_filter(flt, TARGET_SCHEMA, p, field=path)
    params[:] = p.values
    return [sql]


def parse_sort(sort: Any) -> tuple[str, int]:
    if sort is None or sort == []:
        return "target_id", 1
    if not isinstance(sort, list) or len(sort) != 1 or not isinstance(sort[0], dict):
        raise bad_request('sort must be a list with one {"field": "target_id"|"created_at", "direction": 1|-1}')
    field = sort[0].get("field")
    direction = sort[0].get("direction", 1)
    if field not in SORT_FIELDS:
        raise bad_request(f"sort[0].field must be target_id or created_at, got {field!r}")
    if direction not in (1, -1) or isinstance(direction, bool):
        raise bad_request(f"sort[0].direction must be 1 or -1, got {direction!r}")
    return field, direction


def page_sql(
    seg_key: int, conds: list[str], params: list[Any], sort: tuple[str, int],
    position: list[Any] | None, backwards: bool, limit: int,
) -> tuple[str, list[Any]]:
    """The page query: keyset bound after/before `position`, limit+1 rows to know if more."""
    assert position is None or len(position) == (2 if sort[0] == "created_at" else 1)
    field, direction = sort
    # Qualified: a bare created_at in ORDER BY would name the formatted text output column.
    keys = ["t.created_at", "t.target_id"] if field == "created_at" else ["t.target_id"]
    ascending = (direction == 1) != backwards
    where = ["t.seg = $1", *conds]
    args = [seg_key, *params[1:]]
    if position is not None:
        args.extend(position)  # typed: created_at a datetime, target_id a string
        first = len(args) - len(keys) + 1
        lhs = ", ".join(keys)
        rhs = ", ".join(f"${first + i}" for i in range(len(keys)))
        where.append(f"({lhs}) {'>' if ascending else '<'} ({rhs})")
    order = ", ".join(f"{k} {'ASC' if ascending else 'DESC'}" for k in keys)
    sql = (
        f"SELECT t.target_id, {CREATED_AT_TEXT} AS created_at FROM segment_targets t"
        f" WHERE {' AND '.join(where)} ORDER BY {order} LIMIT {int(limit) + 1}"
    )
    return sql, args


def position_of(row: asyncpg.Record | dict[str, Any], field: str) -> list[Any]:
    if field == "created_at":
        return [row["created_at"], row["target_id"]]
    return [row["target_id"]]


async def fetch_index_ordered(
    conn: segments.Conn, sql: str, args: list[Any], *, explain: bool = False
) -> list[asyncpg.Record]:
    """Run a keyset page query with sorts and bitmap scans priced out.

    Right after an import the statistics know nothing of the new segment's rows, and the
    planner would bitmap-scan and sort the whole segment for every page. The settings are
    restored before returning, also inside a caller's transaction (a savepoint then)."""
    if isinstance(conn, asyncpg.Pool):
        async with conn.acquire() as c:
            return await fetch_index_ordered(c, sql, args, explain=explain)
    async with conn.transaction():
        prev = await conn.fetchrow(
            "SELECT current_setting('enable_sort') AS s, current_setting('enable_bitmapscan') AS b,"
            " set_config('enable_sort', 'off', true), set_config('enable_bitmapscan', 'off', true)"
        )
        assert prev is not None
        try:
            return list(await conn.fetch(("EXPLAIN " if explain else "") + sql, *args))
        finally:
            await conn.execute(
                "SELECT set_config('enable_sort', $1, true), set_config('enable_bitmapscan', $2, true)",
                prev["s"], prev["b"],
            )

"""Deleting a campaign's rows: inside the delete for a small campaign, in chunks afterwards for a
large one (migration 0240: the purge row, and no campaign of that id until it is done)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from broadcaster.store.ledger import Conn, Tx

# Up to this many ledger or audience rows a delete removes inside its request (a few tenths of
# a second); beyond, a purge row. BROADCASTER_DELETE_INLINE_MAX overrides it (settings.py).
INLINE_MAX = 50_000
# The SQLSTATE of migration 0240's trigger: a campaign of that id is still being purged.
PURGING = "BRP01"

# Per-recipient tables: a large campaign's go in chunks, the ledger first, so that no click,
# read or conversion finds a recipient of the deleted campaign for long.
LARGE = ("campaign_recipients", "campaign_audience", "campaign_clicks", "campaign_held")
# At most a few rows per minute, batch or variant: deleted with the campaign row.
SMALL = ("campaign_batches", "campaign_minutes", "campaign_converters", "campaign_revenue",
         "campaign_click_counts", "campaign_variant_counts", "campaign_plans")

# A counted send keeps counting against the caps once its ledger row goes (the message stays
# in its channel): the ledger's chunk and its kept sends move in one statement. A row a read
# updates meanwhile is skipped by its ctid and taken by the next chunk, kept sends with it.
_KEEP_CHUNK = """
WITH gone AS (
  DELETE FROM campaign_recipients WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM campaign_recipients WHERE app_id = $1 AND campaign_id = ANY($2::text[]) LIMIT $3))
  RETURNING user_id, capped_at
), kept AS (
  INSERT INTO policy_kept (app_id, user_id, at) SELECT $1, user_id, capped_at FROM gone WHERE capped_at IS NOT NULL
)
SELECT count(*) FROM gone
"""
_CHUNK = ("DELETE FROM {t} WHERE ctid = ANY(ARRAY("
          "SELECT ctid FROM {t} WHERE app_id = $1 AND campaign_id = ANY($2::text[]) LIMIT $3))")
_ALL = "DELETE FROM {t} WHERE app_id = $1 AND campaign_id = ANY($2::text[])"


async def is_large(conn: Conn, app_id: int, ids: Sequence[str], inline_max: int) -> bool:
    """More than inline_max rows in the ledger or the audience (each probe stops there)."""
    for table in LARGE[:2]:
        n = await conn.fetchval(
            f"SELECT count(*) FROM (SELECT 1 FROM {table} WHERE app_id = $1 AND campaign_id = ANY($2::text[])"
            " LIMIT $3) t", app_id, list(ids), inline_max + 1)
        if n > inline_max:
            return True
    return False


async def delete_inline(conn: Tx, app_id: int, ids: Sequence[str]) -> None:
    await _expire_kept(conn, app_id)
    await conn.execute(
        "INSERT INTO policy_kept (app_id, user_id, at) SELECT app_id, user_id, capped_at FROM campaign_recipients"
        " WHERE app_id = $1 AND campaign_id = ANY($2::text[]) AND capped_at IS NOT NULL", app_id, list(ids))
    await _delete_all(conn, app_id, ids, (*LARGE, *SMALL))


async def queue(conn: Tx, app_id: int, ids: Sequence[str]) -> None:
    """The large tables are left to purge_chunk; the campaign rows go with the caller's delete."""
    await _delete_all(conn, app_id, ids, SMALL)
    await conn.execute("INSERT INTO campaign_purges (app_id, campaign_id) SELECT $1, unnest($2::text[])"
                       " ON CONFLICT DO NOTHING", app_id, list(ids))


async def next_purges(conn: Tx, limit: int = 100) -> tuple[int, list[str]] | None:
    """The oldest purge not being worked on by another worker, with more of its app's (up to
    limit), locked to the caller. A chunk that leaves rows behind moves them to the back
    (queued_at), so apps take turns and one app's huge delete does not hold up another's."""
    rows = await conn.fetch(
        "WITH first AS (SELECT app_id FROM campaign_purges ORDER BY queued_at LIMIT 1 FOR UPDATE SKIP LOCKED)"
        " SELECT app_id, campaign_id FROM campaign_purges WHERE app_id = (SELECT app_id FROM first)"
        " ORDER BY queued_at LIMIT $1 FOR UPDATE SKIP LOCKED", limit)
    return (rows[0]["app_id"], [r["campaign_id"] for r in rows]) if rows else None


async def purge_chunk(conn: Tx, app_id: int, ids: Sequence[str], chunk: int) -> tuple[int, bool]:
    """Delete up to `chunk` rows of these campaigns' large tables (ledger first); returns the
    rows deleted and whether they are gone entirely (their purge rows then too)."""
    n = int(await conn.fetchval(_KEEP_CHUNK, app_id, list(ids), chunk))
    for table in LARGE[1:]:
        if n >= chunk:
            break
        n += _count(await conn.execute(_CHUNK.format(t=table), app_id, list(ids), chunk - n))
    if n >= chunk:
        await conn.execute("UPDATE campaign_purges SET queued_at = clock_timestamp(),"
                           " rows_deleted = rows_deleted + CASE WHEN campaign_id = ($2::text[])[1] THEN $3 ELSE 0 END"
                           " WHERE app_id = $1 AND campaign_id = ANY($2::text[])", app_id, list(ids), n)
        return n, False
    # a click or read that found the last ledger rows may have added a counter row meanwhile
    await _delete_all(conn, app_id, ids, SMALL)
    await _expire_kept(conn, app_id)
    await conn.execute("DELETE FROM campaign_purges WHERE app_id = $1 AND campaign_id = ANY($2::text[])",
                       app_id, list(ids))
    return n, True


async def pending(conn: Conn, app_id: int) -> list[dict[str, Any]]:
    rows = await conn.fetch("SELECT campaign_id, queued_at, rows_deleted FROM campaign_purges"
                            " WHERE app_id = $1 ORDER BY queued_at", app_id)
    return [dict(r) for r in rows]


async def _delete_all(conn: Tx, app_id: int, ids: Sequence[str], tables: Sequence[str]) -> None:
    for table in tables:
        await conn.execute(_ALL.format(t=table), app_id, list(ids))


async def _expire_kept(conn: Tx, app_id: int) -> None:
    """Kept sends older than the longest period a cap can have no longer count."""
    await conn.execute("DELETE FROM policy_kept WHERE app_id = $1 AND at < now() - interval '367 days'", app_id)


def _count(status: str) -> int:
    return int(status.rsplit(" ", 1)[-1])

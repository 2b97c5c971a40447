"""stats.variants as counters (0110_variant_counts.sql): each interaction adds to its
variant's row in the transaction that records it, so a stats read is O(variants x shards)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # store/ledger reads the counters through this module
    from broadcaster.store.ledger import Conn

SHARDS = 16
COUNTS = ("sent", "read", "clicked", "converted")


def upsert(column: str, rows: str, shard: str, *, campaign: str = "v.campaign_id",
           variant: str = "v.variant_id", where: str = "true", app: str = "$1") -> str:
    """An INSERT adding count(*) of `rows` (a FROM clause; `app` the app) to `column` of each
    (campaign, variant) row, grouped and in key order (concurrent writers lock the rows in
    the same order): a data-modifying CTE's body or a statement of its own."""
    assert column in COUNTS
    return (
        f"INSERT INTO campaign_variant_counts (app_id, campaign_id, variant_id, shard, {column})"
        f" SELECT {app}::bigint, {campaign}, {variant}, ({shard} & {SHARDS - 1})::smallint, count(*)"
        f" FROM {rows} WHERE {variant} IS NOT NULL AND {where} GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4"
        f" ON CONFLICT (app_id, campaign_id, variant_id, shard) DO UPDATE"
        f" SET {column} = campaign_variant_counts.{column} + EXCLUDED.{column}"
    )


_READ = upsert("read", "unnest($2::text[], $3::text[], $4::text[]) AS v(campaign_id, variant_id, target_id)",
               "hashtext(v.target_id)")


async def add_reads(conn: Conn, app_id: int, rows: list[Any]) -> None:
    """rows: the ledger rows just marked read, with campaign_id, variant_id, target_id."""
    if any(r["variant_id"] is not None for r in rows):
        await conn.execute(_READ, app_id, [r["campaign_id"] for r in rows], [r["variant_id"] for r in rows],
                           [r["target_id"] for r in rows])


async def fill(conn: Conn, app_id: int, ids: list[str], out: dict[str, dict[str, Any]]) -> None:
    """stats.variants of the A/B campaigns among ids: every variant of the template (zeros
    until it has counts), then the counters' sums."""
    ab = await conn.fetch(
        "SELECT id, message_template->'variants' AS vs FROM campaigns WHERE app_id = $1"
        " AND id = ANY($2::text[]) AND message_template ? 'variants'", app_id, ids)
    if not ab:
        return
    for r in ab:
        out[r["id"]]["variants"] = {v["id"]: dict.fromkeys(COUNTS, 0) for v in r["vs"] or []
                                    if isinstance(v, dict) and "id" in v}
    for r in await conn.fetch(
        "SELECT campaign_id, variant_id, sum(sent) AS sent, sum(read) AS read, sum(clicked) AS clicked,"
        " sum(converted) AS converted FROM campaign_variant_counts WHERE app_id = $1"
        " AND campaign_id = ANY($2::text[]) GROUP BY 1, 2", app_id, [r["id"] for r in ab],
    ):
        out[r["campaign_id"]]["variants"][r["variant_id"]] = {k: int(r[k]) for k in COUNTS}

"""Clicks on tracked links (SPEC 5C) through an outbox (0111_click_outbox.sql): the redirect
appends, the drainer applies each click exactly once."""

from __future__ import annotations

from broadcaster.domain.links import Click
from broadcaster.store import variant_counts
from broadcaster.store.ledger import Conn, Tx

SHARDS = 16  # counter rows per campaign (0061_clicks.sql)

# The clicks whose token names a recipient the campaign wrote (a deleted campaign's, or one
# it never wrote, are answered 404) are appended in one statement: one commit for every
# redirect waiting on this flush. Only primary-key probes of the ledger, no row written there.
_APPEND = """
WITH i AS (
  SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::int[], $5::text[])
    WITH ORDINALITY AS i(app, camp, tg, no, url, ord)
), ok AS MATERIALIZED (
  SELECT i.* FROM i WHERE EXISTS (SELECT 1 FROM campaign_recipients r
    WHERE r.app_id = i.app AND r.campaign_id = i.camp AND r.target_id = i.tg)
), ins AS (
  INSERT INTO click_outbox (app_id, campaign_id, target_id, link_no, url)
  SELECT app, camp, tg, no, url FROM ok ORDER BY ord
)
SELECT ord FROM ok
"""


async def append(conn: Conn, clicks: list[Click]) -> list[bool]:
    """Append these clicks to the outbox (committed when this returns); per click whether
    its recipient exists."""
    rows = await conn.fetch(_APPEND, [c.app_id for c in clicks], [c.campaign_id for c in clicks],
                            [c.target_id for c in clicks], [c.link_no for c in clicks], [c.url for c in clicks])
    ok = {int(r[0]) - 1 for r in rows}
    return [i in ok for i in range(len(clicks))]


# One drainer at a time (the advisory lock; a second one skips its turn): the first click
# of a recipient among those taken sets clicked_at where it is not set yet, so a recipient
# counts once however its clicks are split over drains. The planner knows nothing of the
# CTEs' sizes: ledger rows are reached by primary-key probes (set in drain()).
DRAIN_LOCK = 0x636C6B73  # "clks"
_DRAIN = f"""
WITH taken AS MATERIALIZED (
  DELETE FROM click_outbox WHERE id IN (SELECT id FROM click_outbox ORDER BY id LIMIT $1)
  RETURNING id, app_id, campaign_id, target_id, link_no, url, at
), firsts AS MATERIALIZED (
  SELECT DISTINCT ON (app_id, campaign_id, target_id) id, app_id, campaign_id, target_id, at
  FROM taken ORDER BY app_id, campaign_id, target_id, id
), upd AS MATERIALIZED (
  UPDATE campaign_recipients r SET clicked_at = f.at FROM firsts f
  WHERE r.app_id = f.app_id AND r.campaign_id = f.campaign_id AND r.target_id = f.target_id
    AND r.clicked_at IS NULL
  RETURNING f.id, r.app_id, r.campaign_id, r.target_id, r.variant_id
), ins AS (
  INSERT INTO campaign_clicks (app_id, campaign_id, at, target_id, link_no, url, first)
  SELECT t.app_id, t.campaign_id, t.at, t.target_id, t.link_no, t.url, t.id IN (SELECT id FROM upd)
  FROM taken t ORDER BY t.id
), cnt AS (
  INSERT INTO campaign_click_counts (app_id, campaign_id, shard, clicks, users_clicked)
  SELECT app_id, campaign_id, shard, sum(c), sum(u) FROM (
    SELECT app_id, campaign_id, (hashtext(target_id) & {SHARDS - 1})::smallint AS shard, 1 AS c, 0 AS u FROM taken
    UNION ALL
    SELECT app_id, campaign_id, (hashtext(target_id) & {SHARDS - 1})::smallint, 0, 1 FROM upd
  ) x GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
  ON CONFLICT (app_id, campaign_id, shard) DO UPDATE SET clicks = campaign_click_counts.clicks + EXCLUDED.clicks,
    users_clicked = campaign_click_counts.users_clicked + EXCLUDED.users_clicked
), vc AS (
  {variant_counts.upsert("clicked", "upd v", "hashtext(v.target_id)", app="v.app_id")}
)
SELECT count(*) FROM taken
"""


async def drain(conn: Tx, limit: int = 5000) -> int | None:
    """Apply up to `limit` clicks of the outbox in one transaction; how many (None: another
    drainer holds the turn)."""
    if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM click_outbox)"):  # idle: no transaction
        return 0
    async with conn.transaction():
        if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", DRAIN_LOCK):
            return None
        await conn.execute("SELECT set_config('enable_seqscan', 'off', true),"
                           " set_config('enable_hashjoin', 'off', true), set_config('enable_mergejoin', 'off', true)")
        return int(await conn.fetchval(_DRAIN, limit))


async def pending(conn: Conn) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM click_outbox"))

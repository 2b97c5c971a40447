"""Clicks on tracked links (SPEC 5C): one statement per click, in the redirect's request."""

from __future__ import annotations

from broadcaster.domain.links import Click
from broadcaster.store import variant_counts
from broadcaster.store.ledger import Conn

SHARDS = 16  # counter rows per campaign (0061_clicks.sql)

# The ledger row must exist (a token names a recipient the campaign wrote): `led`. The
# first click sets clicked_at under the ledger row's lock; a concurrent first click waits
# for it, re-reads the row and finds it set, so the recipient counts once. One statement,
# one commit: the click is durable before the redirect is answered.
_RECORD = f"""
WITH led AS (
  SELECT 1 FROM campaign_recipients WHERE app_id = $1 AND campaign_id = $2 AND target_id = $3
), first AS (
  UPDATE campaign_recipients SET clicked_at = now()
  WHERE app_id = $1 AND campaign_id = $2 AND target_id = $3 AND clicked_at IS NULL RETURNING variant_id
), ins AS (
  INSERT INTO campaign_clicks (app_id, campaign_id, target_id, link_no, url, first)
  SELECT $1, $2, $3, $4, $5, EXISTS (SELECT 1 FROM first) FROM led
), cnt AS (
  INSERT INTO campaign_click_counts (app_id, campaign_id, shard, clicks, users_clicked)
  SELECT $1, $2, (hashtext($3) & {SHARDS - 1})::smallint, 1, (SELECT count(*) FROM first) FROM led
  ON CONFLICT (app_id, campaign_id, shard) DO UPDATE SET clicks = campaign_click_counts.clicks + 1,
    users_clicked = campaign_click_counts.users_clicked + EXCLUDED.users_clicked
), vc AS (
  {variant_counts.upsert("clicked", "first", "hashtext($3)", campaign="$2", variant="first.variant_id")}
)
SELECT EXISTS (SELECT 1 FROM led)
"""


async def record(conn: Conn, c: Click) -> bool:
    """Record one click; False when the token's campaign has no such recipient (deleted
    campaign, or a recipient it never wrote)."""
    return bool(await conn.fetchval(_RECORD, c.app_id, c.campaign_id, c.target_id, c.link_no, c.url))

"""Conversions: last-received attribution and the counters written with them (SPEC 5C)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from broadcaster.analytics import Conversion
from broadcaster.store import variant_counts
from broadcaster.store.ledger import Tx

# For each conversion, the campaign message the user received last within the window before
# the conversion: the user's channels (members_app_user), in each the newest campaign message
# of the window (messages_channel, walked backwards from the conversion time), confirmed by
# the campaign's ledger row for that message (primary key; a test send has none, and a member
# the campaign did not address, e.g. a members_template agent, is not its recipient): the
# user's row first, the channel's (channel audiences) only when there is none, so a user
# audience's message costs one probe (LIMIT 1 stops the UNION ALL at the first row). A deleted
# campaign whose ledger is still being purged (store/purges.py) is not attributed. No
# index of the fan-out's tables is added for this: the batch write stays as fast as it was.
_ATTRIBUTION = """
  SELECT m.campaign_id, m.id, m.created_at, m.variant_id FROM members mb
  CROSS JOIN LATERAL (
    SELECT m.campaign_id, m.id, m.created_at, r.variant_id FROM messages m
    CROSS JOIN LATERAL (
      SELECT r.variant_id FROM campaign_recipients r WHERE r.app_id = $1 AND r.campaign_id = m.campaign_id
        AND r.target_id = c.user_id AND r.message_id = m.id
      UNION ALL
      SELECT r.variant_id FROM campaign_recipients r WHERE r.app_id = $1 AND r.campaign_id = m.campaign_id
        AND r.target_id = m.cid AND r.message_id = m.id
      LIMIT 1) r
    WHERE m.app_id = $1 AND m.cid = mb.cid AND m.created_at <= c.at AND m.created_at > c.at - $3::interval
      AND m.campaign_id IS NOT NULL AND m.user_id <> c.user_id
      AND EXISTS (SELECT 1 FROM campaigns k WHERE k.app_id = $1 AND k.id = m.campaign_id)
    ORDER BY m.created_at DESC, m.id DESC LIMIT 1
  ) m
  WHERE mb.app_id = $1 AND mb.user_id = c.user_id
  ORDER BY m.created_at DESC, m.id DESC LIMIT 1
"""


# One statement attributes the call's conversions (c: the JSON document's rows, attributed in
# inp by _ATTRIBUTION), records the new ones and, for the attributed ones, the converters
# (first conversion of a user per campaign), the minute counters and the revenue. Rows are
# inserted in key order so concurrent calls lock in the same order (no deadlock); a repeated
# id waits for the first writer and is then skipped: each conversion is counted once.
_RECORD = """
WITH c AS MATERIALIZED (
  SELECT r.ord, r.x->>0 AS id, r.x->>1 AS user_id, r.x->>2 AS event, (r.x->>3)::numeric AS value,
         r.x->>4 AS currency, (r.x->>5)::timestamptz AS at
  FROM json_array_elements($2::json) WITH ORDINALITY AS r(x, ord)
), inp AS MATERIALIZED (
  SELECT c.*, best.campaign_id AS camp, best.id AS mid, best.variant_id AS vr
  FROM c LEFT JOIN LATERAL ({ATTRIBUTION}) best ON true
), ins AS (
  INSERT INTO conversions (app_id, id, user_id, event, value, currency, created_at, campaign_id, message_id)
  SELECT $1, id, user_id, event, value, currency, at, camp, mid FROM inp ORDER BY id
  ON CONFLICT (app_id, id) DO NOTHING
  RETURNING id, user_id, value, currency, created_at, campaign_id
), conv AS (
  INSERT INTO campaign_converters (app_id, campaign_id, user_id, first_at)
  SELECT DISTINCT ON (campaign_id, user_id) $1, campaign_id, user_id, created_at FROM ins
  WHERE campaign_id IS NOT NULL ORDER BY campaign_id, user_id, created_at
  ON CONFLICT DO NOTHING RETURNING campaign_id, user_id, first_at
), mins AS (
  INSERT INTO campaign_minutes (app_id, campaign_id, minute, conversions, users_converted)
  SELECT $1, camp, minute, sum(n), sum(u) FROM (
    SELECT campaign_id AS camp, date_trunc('minute', created_at) AS minute, 1 AS n, 0 AS u
    FROM ins WHERE campaign_id IS NOT NULL
    UNION ALL SELECT campaign_id, date_trunc('minute', first_at), 0, 1 FROM conv) t
  GROUP BY camp, minute ORDER BY camp, minute
  ON CONFLICT (app_id, campaign_id, minute) DO UPDATE SET
    conversions = campaign_minutes.conversions + EXCLUDED.conversions,
    users_converted = campaign_minutes.users_converted + EXCLUDED.users_converted
), rev AS (
  INSERT INTO campaign_revenue (app_id, campaign_id, currency, amount)
  SELECT $1, campaign_id, currency, sum(value) FROM ins
  WHERE campaign_id IS NOT NULL AND value IS NOT NULL
  GROUP BY campaign_id, currency ORDER BY campaign_id, currency
  ON CONFLICT (app_id, campaign_id, currency) DO UPDATE SET amount = campaign_revenue.amount + EXCLUDED.amount
), vc AS (
  -- the converter's variant: that of the ledger row its conversion was attributed through
  {VC}
)
SELECT inp.ord, inp.camp, inp.mid, ins.id IS NOT NULL AS new FROM inp LEFT JOIN ins ON ins.id = inp.id
""".replace("{VC}", variant_counts.upsert(
    "converted", "conv JOIN (SELECT DISTINCT ON (camp, user_id) camp, user_id, vr FROM inp WHERE camp IS NOT NULL"
    " ORDER BY camp, user_id, at) v ON v.camp = conv.campaign_id AND v.user_id = conv.user_id",
    "hashtext(conv.user_id)", campaign="conv.campaign_id", variant="v.vr")).replace("{ATTRIBUTION}", _ATTRIBUTION)


async def record(conn: Tx, app_id: int, items: list[Conversion], window: timedelta) -> list[dict[str, Any]]:
    """Attribute and record; per item {id, user_id, event, campaign_id, message_id, status}
    with status attributed | unattributed | duplicate (its id was recorded before, by this
    call or an earlier one: what that one was attributed to is reported). One statement,
    the items as one JSON document (asyncpg's per-element array encoding of 9 columns cost
    more than the attribution)."""
    first: dict[str, int] = {}
    for i, c in enumerate(items):
        first.setdefault(c.id, i)
    fresh = [i for i in range(len(items)) if first[items[i].id] == i]
    doc = [[c.id, c.user_id, c.event, None if c.value is None else str(c.value), c.currency, c.created_at]
           for c in (items[i] for i in fresh)]
    attr: dict[int, tuple[str | None, str | None]] = {}
    new: set[str] = set()
    for r in await conn.fetch(_RECORD, app_id, doc, window):
        i = fresh[int(r["ord"]) - 1]
        attr[i] = (r["camp"], r["mid"])
        if r["new"]:
            new.add(items[i].id)
    dups = sorted({c.id for c in items} - new)
    before = {r["id"]: (r["campaign_id"], r["message_id"]) for r in await conn.fetch(
        "SELECT id, campaign_id, message_id FROM conversions WHERE app_id = $1 AND id = ANY($2::text[])",
        app_id, dups,
    )} if dups else {}
    out = []
    for i, c in enumerate(items):
        is_new = c.id in new and first[c.id] == i
        if c.id in new:  # recorded now, by this item or an earlier one of the call
            camp, mid = attr.get(first[c.id], (None, None))
        else:
            camp, mid = before.get(c.id, (None, None))
        status = "duplicate" if not is_new else ("attributed" if camp else "unattributed")
        out.append({"id": c.id, "user_id": c.user_id, "event": c.event, "campaign_id": camp,
                    "message_id": mid, "status": status})
    return out

"""The one batch writer: one query reads a batch's pending recipients, one statement writes
what domain/render made of them, for every audience kind and for test sends.

Python ships only what it alone can compute (rendered texts, templated ids and custom data)
as JSON arrays, which cost a fraction of asyncpg's per-element array encoding. Message ids
(ids.message_id_prefix: time-ordered, consecutive within a batch), the 1:1 distinct channels
(found by member pair through channels_distinct_pair, new ones named after their first
message so every index keyed by cid grows at its right edge: store/distinct.py), channels,
members, messages, ledger rows, the batch's outbox row and its done-record are all produced
by one statement of data-modifying CTEs, so a batch is one round trip and stays exactly once
(the done-record commits with the ledger rows).

Members of new channels are inserted without ON CONFLICT: only for channels this statement
has just created (the `ch` CTE returns only new rows), which cannot have members yet (a
channel's hard delete removes its members in the same transaction). Speculative insertion
cost 14 % of the bare insert rate. sender_mode include adds the sender to the existing
channels used (ON CONFLICT DO NOTHING there, counting only real additions).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from broadcaster import ids as idgen
from broadcaster.domain.render import Batch, Shape
from broadcaster.store import variant_counts
from broadcaster.store.distinct import HI, LO, PAIR_KEY, probe
from broadcaster.store.ledger import Tx

# Tables filled moments ago have no statistics, and a plan that thinks them tiny scans them
# whole once per batch id: primary-key probes are forced for the rest of the transaction.
_PROBES = ("SELECT set_config('enable_seqscan', 'off', true), set_config('enable_bitmapscan', 'off', true),"
           " set_config('plan_cache_mode', 'force_custom_plan', true)")
_PENDING = (" FROM campaign_audience a {join} WHERE a.app_id = $1 AND a.campaign_id = $2"
            " AND a.target_id > coalesce($3, '') AND a.target_id <= $4"
            " AND a.target_id NOT IN (SELECT r.target_id FROM campaign_recipients r WHERE r.app_id = $1"
            "   AND r.campaign_id = $2 AND r.target_id > coalesce($3, '') AND r.target_id <= $4)"
            " ORDER BY a.target_id")
# The app as the per-recipient lookups compare it: an InitPlan's output, whose value the
# planner cannot see, so `app_id = ?` is estimated at the average app's share of the table
# (1 / n_distinct) rather than at the share ANALYZE last saw for this app. For an app new to
# the statistics that share is ~1 row, every index leading with app_id then looks as cheap as
# the primary key, and a lookup planned on users_app_name, channels_app_created or
# members_app_user walked all the app's rows for each recipient (docs/scaling.md; the pair
# probe has its own index expression, migration 0250).
LOOKUP_APP = "(SELECT $1::bigint)"
# LATERAL ... LIMIT 1 cannot be flattened into a join, so each id is one index probe.
_USER = ("LEFT JOIN LATERAL (SELECT u.id, u.name, u.role, u.teams, u.language, u.custom FROM users u"
         f"   WHERE u.app_id = {LOOKUP_APP} AND u.id = {{id}} AND u.deleted_at IS NULL LIMIT 1) u ON true")
_USER_COLS = "u.id IS NOT NULL AS found, u.name, u.role, u.teams, u.language, u.custom"
PENDING_USERS = f"SELECT a.target_id AS id, {_USER_COLS}" + _PENDING.format(join=_USER.format(id="a.target_id"))
_CHANNEL_JOIN = (
    "LEFT JOIN LATERAL (SELECT c.type, c.id AS chid, c.team, c.custom AS ccustom FROM channels c"
    f"   WHERE c.app_id = {LOOKUP_APP} AND c.cid = a.target_id AND c.deleted_at IS NULL LIMIT 1) c ON true"
    " LEFT JOIN LATERAL (SELECT CASE WHEN count(*) = 2 AND bool_or(m.user_id = $5)"
    "   THEN max(m.user_id) FILTER (WHERE m.user_id <> $5) END AS other FROM members m"
    f"   WHERE m.app_id = {LOOKUP_APP} AND m.cid = a.target_id AND c.chid IS NOT NULL) o ON true "
    + _USER.format(id="o.other")
)
PENDING_CHANNELS = ("SELECT a.target_id AS id, c.chid IS NOT NULL AS found, c.type, c.chid, c.team, c.ccustom,"
                    " u.id AS rid, u.name, u.role, u.teams, u.language, u.custom"
                    + _PENDING.format(join=_CHANNEL_JOIN))


async def pending_users(
    conn: Tx, app_id: int, cid: str, after: str | None, upto: str,
) -> list[asyncpg.Record]:
    """The batch's recipients (its range (after, upto] of the fixed audience) without a ledger
    row yet, in order, with their live user if any. Call inside the batch's transaction;
    ledger rows of a batch not yet done are rare (excluded recipients): one range scan."""
    await conn.execute(_PROBES)
    return list(await conn.fetch(PENDING_USERS, app_id, cid, after, upto))


async def pending_channels(
    conn: Tx, app_id: int, cid: str, sender_id: str, after: str | None, upto: str,
) -> list[asyncpg.Record]:
    """As pending_users for a channel audience: each live channel, and the other member of a
    1:1 channel with the sender (two members, one the sender) with its live user."""
    await conn.execute(_PROBES)
    return list(await conn.fetch(PENDING_CHANNELS, app_id, cid, after, upto, sender_id))


async def users_by_ids(conn: Tx, app_id: int, ids: list[str]) -> list[asyncpg.Record]:
    """Rows shaped as pending_users' for a list of user ids, in that order (test sends)."""
    return list(await conn.fetch(
        f"SELECT a.id, {_USER_COLS} FROM unnest($2::text[]) WITH ORDINALITY AS a(id, ord) "
        + _USER.format(id="a.id") + " ORDER BY a.ord", app_id, ids,
    ))


async def live_cids(conn: Tx, app_id: int, cids: list[str]) -> set[str]:
    """Which of these channels exist (not soft-deleted)."""
    rows = await conn.fetch(
        "SELECT cid FROM channels WHERE app_id = $1 AND cid = ANY($2::text[]) AND deleted_at IS NULL", app_id, cids)
    return {r[0] for r in rows}


# $1 app, $2 campaign, $3 batch_no (-1: a test send), $4 sender, $5 targets, $6 chids, $7 texts,
# $8 customs, $9 ccustoms, $10 ctype, $11 const text, $12 const custom, $13 const channel
# custom, $14 attachments, $15 team, $16 member users, $17 member roles, $18 member customs,
# $19 other rows, $20 n, $21 errored, $22 create channels, $23 events, $24 sender view, $25 ts,
# $26 the batch run's message id prefix, $27 receivers (channel audiences), $28 channel
# audience, $29 include the sender, $30 test send (no ledger), $31 recipients that already had
# a ledger row (excluded ones: counted as skipped), $32 per-row attachments (tracked links), $33 per-row variant ids,
# $34 1:1 distinct channels (found by member pair, new ones get the time-ordered id), $35 the
# instant the sent rows count against frequency caps (NULL: not counted; services/policy), $36
# each variant's custom {variant id: custom} (rows without their own)
_WRITE = f"""
WITH x AS MATERIALIZED (
  SELECT r.tg, CASE WHEN $28 THEN r.rc ELSE r.tg END AS u, r.ch,
         CASE WHEN $34 THEN {LO.format(r="r.tg", s="$4")} END AS lo,
         CASE WHEN $34 THEN {HI.format(r="r.tg", s="$4")} END AS hi,
         CASE WHEN $34 AND $22 THEN {probe("r.tg", "$4", "$1", "$10::text")} END AS ex,
         coalesce(r.t, $11) AS t, coalesce(r.cu::jsonb, $36::jsonb -> r.vr, $12::jsonb) AS cu, coalesce(r.ccu::jsonb, $13::jsonb) AS ccu,
         coalesce(r.att::jsonb, $14::jsonb) AS att, r.vr,
         $26 || lpad(to_hex(r.ord), 5, '0') AS mid,
         r.ord
  FROM ROWS FROM (json_array_elements_text($5::json), json_array_elements_text($6::json),
                  json_array_elements_text($7::json), json_array_elements($8::json),
                  json_array_elements($9::json), json_array_elements_text($27::json),
                  json_array_elements($32::json), json_array_elements_text($33::json))
       WITH ORDINALITY AS r(tg, ch, t, cu, ccu, rc, att, vr, ord)
  WHERE r.tg IS NOT NULL
), x2 AS (
  -- a new distinct channel's id is its first message's id: time-ordered like it
  SELECT x.*, CASE WHEN $28 THEN x.ch ELSE coalesce(x.ex, x.ch, '{idgen.DISTINCT_PREFIX}' || x.mid) END AS chid FROM x
), y AS MATERIALIZED (
  SELECT x2.*, CASE WHEN $28 THEN x2.chid ELSE $10::text || ':' || x2.chid END AS cid FROM x2
), fixed AS MATERIALIZED (
  SELECT * FROM unnest($16::text[], $17::text[], $18::jsonb[]) AS f(u, role, cu)
), nc AS MATERIALIZED (
  SELECT DISTINCT ON (cid) cid, chid, u, ccu, ord, lo, hi FROM y WHERE $22 AND y.ex IS NULL ORDER BY cid, ord
), chc AS (
  INSERT INTO channels (app_id, cid, type, id, team, created_by_id, custom, member_count)
  SELECT $1, nc.cid, $10::text, nc.chid, $15, $4, nc.ccu,
         (SELECT count(*) FROM fixed) + CASE WHEN nc.u = ANY($16::text[]) THEN 0 ELSE 1 END
  FROM nc WHERE NOT $34 ORDER BY nc.cid ON CONFLICT DO NOTHING RETURNING cid, id, custom
), chd AS (
  -- a pair created by a concurrent transaction after this statement's snapshot: that
  -- channel wins (DO UPDATE returns it, DO NOTHING would leave this row's cid dangling)
  INSERT INTO channels (app_id, cid, type, id, team, created_by_id, custom, member_count, pair_lo, pair_hi)
  SELECT $1, nc.cid, $10::text, nc.chid, $15, $4, nc.ccu,
         (SELECT count(*) FROM fixed) + CASE WHEN nc.u = ANY($16::text[]) THEN 0 ELSE 1 END, nc.lo, nc.hi
  FROM nc WHERE $34 ORDER BY nc.cid
  {{pair_conflict}}
  RETURNING cid, id, custom, pair_lo, pair_hi, xmax::text = '0' AS fresh
), newc AS (
  -- the channels created, with their receiver; a distinct one's is in its pair (no join of
  -- two CTEs: the planner sees one row in each and nested-loops 2,000 x 2,000 rows)
  SELECT chc.cid, nc.u, nc.ord FROM chc JOIN nc ON nc.cid = chc.cid
  UNION ALL SELECT d.cid, CASE WHEN d.pair_lo = $4 THEN d.pair_hi ELSE d.pair_lo END, 0 FROM chd d WHERE d.fresh
), ch AS (
  SELECT cid, id, custom FROM chc UNION ALL SELECT cid, id, custom FROM chd WHERE fresh
), won AS (
  SELECT pair_lo, pair_hi, cid FROM chd WHERE NOT fresh
), z AS MATERIALIZED (
  SELECT y.tg, y.u, y.t, y.cu, y.att, y.vr, y.mid, y.ord, coalesce(w.cid, y.cid) AS cid
  FROM y LEFT JOIN won w ON w.pair_lo = y.lo AND w.pair_hi = y.hi
), mem AS (
  INSERT INTO members (app_id, cid, user_id, channel_role, custom)
  SELECT $1, c.cid, m.u, m.role, m.cu FROM newc c,
    LATERAL (SELECT f.u, f.role, f.cu FROM fixed f
             UNION ALL SELECT c.u, 'channel_member', '{{}}'::jsonb WHERE c.u <> ALL($16::text[])) m
  ORDER BY c.cid, m.u
), inc AS (
  INSERT INTO members (app_id, cid, user_id, channel_role, custom)
  SELECT $1, s.cid, $4, 'channel_member', '{{}}'::jsonb FROM (SELECT DISTINCT cid FROM z) s
  WHERE $29 AND s.cid NOT IN (SELECT cid FROM ch) ORDER BY s.cid
  ON CONFLICT DO NOTHING RETURNING cid
), incc AS (
  UPDATE channels SET member_count = member_count + 1 FROM inc
  WHERE channels.app_id = $1 AND channels.cid = inc.cid
), msg AS (
  INSERT INTO messages (app_id, id, cid, user_id, text, attachments, custom, campaign_id)
  SELECT $1, z.mid, z.cid, $4, z.t, z.att, z.cu, $2 FROM z ORDER BY z.cid
), led AS (
  INSERT INTO campaign_recipients (app_id, campaign_id, target_id, user_id, channel_cid,
                                   message_id, status, error, sent_at, variant_id, capped_at)
  SELECT $1, $2, z.tg, z.u, z.cid, z.mid, 'sent', NULL, now(), z.vr, $35::timestamptz FROM z WHERE NOT $30
  UNION ALL
  SELECT $1, $2, o->>0, o->>1, o->>2, NULL, o->>3, o->>4, NULL, NULL, NULL FROM json_array_elements($19::json) o
  WHERE NOT $30
), vc AS (
  {variant_counts.upsert("sent", "z", "$3", campaign="$2", variant="z.vr", where="NOT $30")}
), ev AS (
  -- the batch's events as one row: its message id prefix, its messages' row numbers and the
  -- channels it created, expanded into the delivered bodies when routed (store/outbox.py
  -- events), instead of two rows per recipient, each with its key entry and its WAL.
  INSERT INTO outbox (app_id, event_type, campaign_id, payload, events)
  SELECT $1, 'batch', $2, jsonb_build_object('user', $24::jsonb, 'at', $25::text, 'p', $26::text,
           'c', coalesce((SELECT jsonb_agg(c.cid ORDER BY c.ord, c.cid) FROM newc c), '[]'::jsonb),
           'm', (SELECT jsonb_agg(z.ord ORDER BY z.ord) FROM z)),
         (SELECT count(*) FROM newc) + (SELECT count(*) FROM z)
  WHERE $23 AND EXISTS (SELECT 1 FROM z)
), done AS (
  UPDATE campaign_batches SET done = true, done_at = now(), n = $20,
    sent = (SELECT count(*) FROM y), errored = $21,
    skipped = json_array_length($19::json) - $21 + $31, channels_created = (SELECT count(*) FROM ch)
  WHERE app_id = $1 AND campaign_id = $2 AND batch_no = $3
)
SELECT (SELECT count(*) FROM y) AS sent, (SELECT count(*) FROM ch) AS created, (SELECT count(*) FROM won) AS won,
  (SELECT count(*) FROM campaign_batches WHERE app_id = $1 AND campaign_id = $2 AND NOT done
   AND batch_no <> $3) AS others,
  CASE WHEN $30 THEN (SELECT json_agg(json_build_array(z.tg, z.cid, z.mid, z.t) ORDER BY z.ord) FROM z)
  END AS rows
"""
# The distinct channels are inserted plainly: ON CONFLICT makes every row a speculative
# insertion (a pre-check of the pair index and a second WAL record). A pair created by a
# concurrent transaction after the snapshot then fails the statement with a unique
# violation of channels_distinct_pair, and the batch is redone (services/batches) with
# CONTENDED, whose DO UPDATE takes that channel as the winner.
PAIR_INDEX = "channels_distinct_pair"
_CONTENDED = _WRITE.replace("{pair_conflict}", (
    f"ON CONFLICT {PAIR_KEY} DO UPDATE SET pair_lo = EXCLUDED.pair_lo"))
_WRITE = _WRITE.replace("{pair_conflict}", "")


def pair_taken(e: BaseException) -> bool:
    """Whether a batch write failed on a distinct pair created concurrently (redo contended)."""
    return isinstance(e, asyncpg.UniqueViolationError) and getattr(e, "constraint_name", None) == PAIR_INDEX


class ChannelRace(Exception):
    """A 1:1 pair this batch was creating was created by a concurrent transaction first (the
    statement wrote into that channel), while the texts were rendered with this batch's id."""


async def write(
    conn: Tx, camp: asyncpg.Record, no: int, sh: Shape, b: Batch, n: int, events: bool,
    sender: dict[str, Any], ts: str, *, pre: int = 0, test: bool = False, capped_at: datetime | None = None,
    contended: bool = False, prefix: str | None = None, exact_ids: bool = False,
) -> tuple[int, int, int, int, int, Any]:
    """Write a rendered batch in one statement; returns (sent, errored, skipped, created,
    other open batches of the campaign as this transaction saw them, the sent rows of a test
    send as [target, cid, message id, text] lists). n counts the batch's whole range; `pre`
    the recipients in it that already had a ledger row (excluded before their batch ran).
    contended (and test sends, whose transaction is the API request's): distinct pairs
    created concurrently are taken as they are instead of failing the statement.
    exact_ids (with contended): the templates read `channel`: a pair won by a concurrent
    creator raises ChannelRace (call it in a savepoint and render again: the probe then finds
    the winner)."""
    user = {"id": sender["id"], "name": sender.get("name", ""), "role": sender.get("role", "user")}
    r = await conn.fetchrow(
        _CONTENDED if contended or test else _WRITE, camp["app_id"], camp["id"], -1 if test else no, camp["sender_id"], b.targets, b.chids,
        b.texts, b.customs, b.ccustoms, sh.ctype, sh.text, sh.custom, sh.ccustom, sh.attachments,
        sh.team, [m[0] for m in sh.members], [m[1] for m in sh.members], [m[2] for m in sh.members],
        b.other, n, b.errored, bool(camp["create_channels"]) and not b.channel_mode, events, user, ts,
        prefix or idgen.message_id_prefix(), b.receivers, b.channel_mode, sh.include_sender, test, pre,
        b.attachments, b.variants, sh.distinct and not b.channel_mode, capped_at, b.variant_customs,
    )
    assert r is not None
    if exact_ids and r["won"]:
        raise ChannelRace(f"{r['won']} of the batch's channels were created concurrently")
    sent, created = int(r["sent"]), int(r["created"])
    return sent, b.errored, len(b.other) - b.errored + pre, created, int(r["others"]), r["rows"]

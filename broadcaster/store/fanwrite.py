"""The fan-out hot path for user audiences: one query reads a batch's pending recipients
with their users, one statement writes the whole batch.

Python ships only what it alone can compute (rendered texts, templated ids and custom data)
as JSON arrays, which cost a fraction of asyncpg's per-element array encoding. Message ids
(ids.message_id_prefix: time-ordered, consecutive within a batch), distinct channel ids (md5,
as ids.distinct_channel_id), channels, members, messages, ledger rows, outbox events and the
batch's done-record are all produced by one statement of data-modifying CTEs, so a batch is
one round trip and stays exactly once (the done-record commits with the ledger rows).

Members are inserted without ON CONFLICT: only for channels this statement has just created
(the `ch` CTE returns only new rows), which cannot have members yet (a channel's hard delete
removes its members in the same transaction). Speculative insertion cost 14 % of the bare
insert rate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import asyncpg

from broadcaster import ids as idgen
from broadcaster.store.ledger import Tx
from broadcaster.templating import CampaignTemplates, RenderError, user_view
from broadcaster.validate import ID_RE


async def pending_users(
    conn: Tx, app_id: int, cid: str, after: str | None, upto: str,
) -> list[asyncpg.Record]:
    """The batch's recipients (its range (after, upto] of the campaign's fixed audience)
    without a ledger row yet, in order, with their live user if any.

    Call inside the batch's transaction. Ledger rows of a batch not yet done are rare
    (excluded recipients): one range scan finds them. Users are probed by primary key, and
    that is forced for the rest of the transaction: tables filled moments ago have no
    statistics, and a plan that thinks them tiny scans them whole once per batch id."""
    await conn.execute(
        "SELECT set_config('enable_seqscan', 'off', true), set_config('enable_bitmapscan', 'off', true),"
        " set_config('plan_cache_mode', 'force_custom_plan', true)"  # no plan cached from a tiny table
    )
    # LATERAL ... LIMIT 1 cannot be flattened into a join, so each id is one index probe.
    return list(await conn.fetch(
        "SELECT a.target_id AS id, u.id IS NOT NULL AS found, u.name, u.role, u.teams, u.language, u.custom"
        " FROM campaign_audience a"
        " LEFT JOIN LATERAL (SELECT u.id, u.name, u.role, u.teams, u.language, u.custom FROM users u"
        "   WHERE u.app_id = $1 AND u.id = a.target_id AND u.deleted_at IS NULL LIMIT 1) u ON true"
        " WHERE a.app_id = $1 AND a.campaign_id = $2 AND a.target_id > coalesce($3, '') AND a.target_id <= $4"
        " AND a.target_id NOT IN (SELECT r.target_id FROM campaign_recipients r WHERE r.app_id = $1"
        "   AND r.campaign_id = $2 AND r.target_id > coalesce($3, '') AND r.target_id <= $4)"
        " ORDER BY a.target_id",
        app_id, cid, after, upto,
    ))


@dataclass
class UserBatch:
    """Column-wise rows of one rendered batch. A list left as None means "the same for every
    row" (constant text/custom) or "computed in SQL" (distinct channel ids)."""

    users: list[str] = field(default_factory=list)
    chids: list[str] | None = None
    texts: list[str] | None = None
    customs: list[Any] | None = None
    ccustoms: list[Any] | None = None
    # skipped/errored: [target, user, cid, status, error]
    other: list[list[str | None]] = field(default_factory=list)
    errored: int = 0


@dataclass(frozen=True)
class Shape:
    """Per-campaign constants of the write statement."""

    ctype: str
    team: str | None
    text: str
    custom: Any
    ccustom: Any
    attachments: Any
    members: list[tuple[str, str, Any]]  # (user, role, custom): every channel's fixed members


def shape(camp: asyncpg.Record, text: str, custom: Any, ccustom: Any) -> Shape:
    """The constant members follow fanout._member_rows: the sender (unless excluded), then
    channel_template.members (default role), then members_template (overriding)."""
    ct = camp["channel_template"] or {}
    rows: dict[str, tuple[str, Any]] = {}
    if camp["sender_mode"] != "exclude":
        rows[camp["sender_id"]] = ("channel_member", {})
    for m in ct.get("members") or []:
        rows.setdefault(m, ("channel_member", {}))
    for m in ct.get("members_template") or []:
        rows[m["user_id"]] = (m.get("channel_role") or "channel_member", m.get("custom") or {})
    mt = camp["message_template"]
    return Shape(
        ctype=ct.get("type") or "messaging", team=ct.get("team"), text=text, custom=custom,
        ccustom=ccustom, attachments=mt.get("attachments") or [],
        members=[(u, r, c) for u, (r, c) in rows.items()],
    )


# $1 app, $2 campaign, $3 batch_no, $4 sender, $5 users, $6 chids, $7 texts, $8 customs,
# $9 ccustoms, $10 ctype, $11 const text, $12 const custom, $13 const channel custom,
# $14 attachments, $15 team, $16 member users, $17 member roles, $18 member customs,
# $19 other rows, $20 n, $21 errored, $22 create channels, $23 events, $24 sender view, $25 ts,
# $26 the batch run's message id prefix (ids.message_id_prefix)
_WRITE = """
WITH x AS MATERIALIZED (
  SELECT r.u, coalesce(r.ch, '!members-' || md5(CASE WHEN r.u = $4 THEN r.u
           WHEN r.u COLLATE "C" < $4 COLLATE "C" THEN r.u || ',' || $4 ELSE $4 || ',' || r.u END)) AS chid,
         coalesce(r.t, $11) AS t, coalesce(r.cu::jsonb, $12::jsonb) AS cu, coalesce(r.ccu::jsonb, $13::jsonb) AS ccu,
         $26 || lpad(to_hex(r.ord), 5, '0') AS mid,
         r.ord
  FROM ROWS FROM (json_array_elements_text($5::json), json_array_elements_text($6::json),
                  json_array_elements_text($7::json), json_array_elements($8::json),
                  json_array_elements($9::json)) WITH ORDINALITY AS r(u, ch, t, cu, ccu, ord)
  WHERE r.u IS NOT NULL
), y AS MATERIALIZED (
  SELECT x.*, $10::text || ':' || x.chid AS cid FROM x
), fixed AS MATERIALIZED (
  SELECT * FROM unnest($16::text[], $17::text[], $18::jsonb[]) AS f(u, role, cu)
), nc AS MATERIALIZED (
  SELECT DISTINCT ON (cid) cid, chid, u, ccu, ord FROM y WHERE $22 ORDER BY cid, ord
), ch AS (
  INSERT INTO channels (app_id, cid, type, id, team, created_by_id, custom, member_count)
  SELECT $1, nc.cid, $10::text, nc.chid, $15, $4, nc.ccu,
         (SELECT count(*) FROM fixed) + CASE WHEN nc.u = ANY($16::text[]) THEN 0 ELSE 1 END
  FROM nc ORDER BY nc.cid ON CONFLICT DO NOTHING RETURNING cid, id, custom
), mem AS (
  INSERT INTO members (app_id, cid, user_id, channel_role, custom)
  SELECT $1, ch.cid, m.u, m.role, m.cu FROM ch JOIN nc ON nc.cid = ch.cid,
    LATERAL (SELECT f.u, f.role, f.cu FROM fixed f
             UNION ALL SELECT nc.u, 'channel_member', '{}'::jsonb WHERE nc.u <> ALL($16::text[])) m
  ORDER BY ch.cid, m.u
), msg AS (
  INSERT INTO messages (app_id, id, cid, user_id, text, attachments, custom, campaign_id)
  SELECT $1, y.mid, y.cid, $4, y.t, $14::jsonb, y.cu, $2 FROM y ORDER BY y.cid
), led AS (
  INSERT INTO campaign_recipients (app_id, campaign_id, target_id, user_id, channel_cid,
                                   message_id, status, error, sent_at)
  SELECT $1, $2, y.u, y.u, y.cid, y.mid, 'sent', NULL, now() FROM y
  UNION ALL
  SELECT $1, $2, o->>0, o->>1, o->>2, NULL, o->>3, o->>4, NULL FROM json_array_elements($19::json) o
), ev AS (
  -- compact references, expanded into the delivered bodies when routed (store/webhooks.py
  -- outbox_batch): a full body cost a quarter of the batch's write rate
  INSERT INTO outbox (app_id, event_type, campaign_id, payload)
  SELECT $1, e.typ, $2, jsonb_build_object('ref', e.ref, 'user', $24::jsonb, 'at', $25::text) FROM (
    SELECT 0 AS k, ch_nc.ord AS key, 'channel.created' AS typ, ch.cid AS ref
    FROM ch JOIN nc ch_nc ON ch_nc.cid = ch.cid
    UNION ALL
    SELECT 1, y.ord, 'message.new', y.mid FROM y
  ) e WHERE $23 ORDER BY e.k, e.key
), done AS (
  UPDATE campaign_batches SET done = true, done_at = now(), n = $20,
    sent = (SELECT count(*) FROM y), errored = $21,
    skipped = json_array_length($19::json) - $21, channels_created = (SELECT count(*) FROM ch)
  WHERE app_id = $1 AND campaign_id = $2 AND batch_no = $3
)
SELECT (SELECT count(*) FROM y) AS sent, (SELECT count(*) FROM ch) AS created,
  (SELECT count(*) FROM campaign_batches WHERE app_id = $1 AND campaign_id = $2 AND NOT done
   AND batch_no <> $3) AS others
"""


async def write(
    conn: Tx, camp: asyncpg.Record, no: int, sh: Shape, b: UserBatch, n: int, events: bool,
    sender: dict[str, Any], ts: str,
) -> tuple[int, int, int, int, int]:
    """Write a rendered batch in one statement; returns (sent, errored, skipped, created,
    other open batches of the campaign as this transaction saw them).
    n counts the batch's whole range; skipped counts only this run's skipped rows (ids that
    already had a ledger row, e.g. excluded ones, are not counted again), as in fanout.write_batch."""
    user = {"id": sender["id"], "name": sender.get("name", ""), "role": sender.get("role", "user")}
    r = await conn.fetchrow(
        _WRITE, camp["app_id"], camp["id"], no, camp["sender_id"], b.users, b.chids, b.texts,
        b.customs, b.ccustoms, sh.ctype, sh.text, sh.custom, sh.ccustom, sh.attachments, sh.team,
        [m[0] for m in sh.members], [m[1] for m in sh.members],
        [m[2] for m in sh.members], b.other, n, b.errored,
        bool(camp["create_channels"]), events, user, ts, idgen.message_id_prefix(),
    )
    assert r is not None
    sent, created = int(r["sent"]), int(r["created"])
    return sent, b.errored, len(b.other) - b.errored, created, int(r["others"])


def mentions_channel(tpl: CampaignTemplates) -> bool:
    """Whether any text/custom template can read `channel` (else its context is not built)."""
    parts = [tpl.text, *(t for _, t in tpl.custom.parts)]
    return any("channel" in t.source for t in parts)


def render(
    camp: asyncpg.Record, tpl: CampaignTemplates, rows: list[asyncpg.Record], sender: dict[str, Any],
    existing: set[str] | None,
) -> UserBatch:
    """Render one batch of a user audience exactly as fanout.build_user_batch does, keeping
    only what SQL cannot derive. existing: live channel cids (None = create_channels)."""
    ct = camp["channel_template"] or {}
    ctype = ct.get("type") or "messaging"
    sid = sender["id"]
    ship_chid = tpl.channel_id is not None or existing is not None
    need_chid = ship_chid or mentions_channel(tpl)
    need_channel = need_chid and mentions_channel(tpl)
    text_const = tpl.text.compiled is None
    cc_const = tpl.channel_custom.constant
    cu_const = tpl.custom.constant
    b = UserBatch(chids=[] if ship_chid else None, texts=None if text_const else [],
                  customs=None if cu_const else [], ccustoms=None if cc_const else [])
    for r in rows:
        uid = r["id"]
        if not r["found"]:
            b.other.append([uid, uid, None, "skipped", "user_not_found"])
            continue
        u = user_view(r)
        ctx: dict[str, Any] = {"sender": sender, "receiver": u, "user": u}
        try:
            chid = ""
            if tpl.channel_id is not None:
                chid = tpl.channel_id.render({**ctx, "channel": {"type": ctype}})
                if not ID_RE.match(chid):
                    raise RenderError(f"channel_template.id rendered an invalid channel id {chid[:80]!r}")
            elif need_chid:
                chid = idgen.distinct_channel_id((sid, uid))
            if existing is not None:
                c = f"{ctype}:{chid}"
                if c not in existing:
                    b.other.append([uid, uid, c, "skipped", "channel_not_found"])
                    continue
            ccustom = tpl.channel_custom.value if cc_const else tpl.channel_custom.render(ctx)
            if need_channel:
                channel = {"id": chid, "type": ctype, "cid": f"{ctype}:{chid}", "custom": ccustom}
                ctx["channel"] = {**ccustom, **channel} if isinstance(ccustom, dict) else channel
            text = None if text_const else tpl.text.render(ctx)
            custom = None if cu_const else tpl.custom.render(ctx)
        except RenderError as e:
            b.other.append([uid, uid, None, "errored", str(e)])
            b.errored += 1
            continue
        b.users.append(uid)
        if b.chids is not None:
            b.chids.append(chid)
        if b.texts is not None:
            b.texts.append(text)  # type: ignore[arg-type]
        if b.customs is not None:
            b.customs.append(custom)
        if b.ccustoms is not None:
            b.ccustoms.append(ccustom)
    return b

"""The fan-out engine's SQL: audience pages, planning batch boundaries, and one batch written
set-based in one transaction (channels, members, messages, ledger, outbox, counters).

A batch runs under a KEY SHARE lock on its campaign row (stop/pause/exclude take it FOR UPDATE,
so they wait for in-flight batches and every later batch sees the new status) and a row lock
on its batch row (two copies of one job serialise; the second finds it done).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson

from broadcaster import ids as idgen
from broadcaster import timefmt
from broadcaster.store.campaigns import QUEUED_LEASE_S
from broadcaster.store.ledger import Conn, Tx
from broadcaster.templating import (
    TEST_SEND_SECONDS,
    CampaignTemplates,
    RenderError,
    batch_budget,
    user_view,
)
from broadcaster.validate import ID_RE

RUNNING_LEASE_S = 10  # a started one not done by then (worker killed) is re-enqueued


async def audience_range(conn: Tx, app_id: int, cid: str, after: str | None, upto: str) -> list[str]:
    """The batch's range (after, upto] of the campaign's fixed audience, ascending."""
    rows = await conn.fetch(
        "SELECT target_id FROM campaign_audience WHERE app_id = $1 AND campaign_id = $2"
        " AND target_id > coalesce($3, '') AND target_id <= $4 ORDER BY target_id",
        app_id, cid, after, upto,
    )
    return [r[0] for r in rows]


async def batch_row(conn: Tx, app_id: int, cid: str, no: int) -> asyncpg.Record | None:
    """The batch's range and state, locked: two copies of one job serialise here."""
    return await conn.fetchrow(
        "SELECT after_id, upto_id, n, done FROM campaign_batches WHERE app_id = $1 AND campaign_id = $2"
        " AND batch_no = $3 FOR UPDATE", app_id, cid, no,
    )


async def open_batches(conn: Conn, app_id: int, cid: str) -> list[tuple[int, int]]:
    """Batches whose job is presumed lost (lease over): bump tries; returns (batch_no, tries)."""
    rows = await conn.fetch(
        f"UPDATE campaign_batches SET tries = tries + 1, lease_until = now() + interval '{QUEUED_LEASE_S} s'"
        " WHERE app_id = $1 AND campaign_id = $2 AND NOT done AND lease_until < now()"
        " RETURNING batch_no, tries", app_id, cid,
    )
    return [(r[0], r[1]) for r in rows]


async def lease(conn: Tx, app_id: int, cid: str, no: int, seconds: float = RUNNING_LEASE_S) -> int | None:
    """Claim a batch for running; returns its planned size, None when it is already done."""
    r = await conn.fetchval(
        "UPDATE campaign_batches SET lease_until = now() + make_interval(secs => $4)"
        " WHERE app_id = $1 AND campaign_id = $2 AND batch_no = $3 AND NOT done RETURNING n",
        app_id, cid, no, float(seconds),
    )
    return int(r) if r is not None else None


async def webhooks_on(conn: Tx, camp: asyncpg.Record) -> bool:
    if camp["skip_webhook"]:
        return False
    s = await conn.fetchval("SELECT settings FROM apps WHERE id = $1", camp["app_id"]) or {}
    return webhooks_enabled(camp, s)


def webhooks_enabled(camp: asyncpg.Record, app_settings: dict[str, Any]) -> bool:
    """message.new/channel.created go to the outbox only if some receiver is configured."""
    if camp["skip_webhook"]:
        return False
    s = app_settings
    return bool(s.get("webhook_url")) or any(h.get("enabled", True) for h in s.get("event_hooks") or [])


@dataclass
class Batch:
    """Rows of one batch, column-wise for unnest()."""

    targets: list[str] = field(default_factory=list)
    users: list[str | None] = field(default_factory=list)
    cids: list[str | None] = field(default_factory=list)
    msg_ids: list[str | None] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)
    errors: list[str | None] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    customs: list[str] = field(default_factory=list)
    new_channels: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # cid -> type, id, custom json
    members: list[tuple[str, str, str, str]] = field(default_factory=list)  # cid, user, role, custom json
    id_prefix: str = field(default_factory=idgen.message_id_prefix)

    def skip(self, target: str, user: str | None, cid: str | None, status: str, err: str) -> None:
        self.targets.append(target)
        self.users.append(user)
        self.cids.append(cid)
        self.msg_ids.append(None)
        self.statuses.append(status)
        self.errors.append(err)


def _member_rows(camp: asyncpg.Record, cid: str, receiver: str | None) -> list[tuple[str, str, str, str]]:
    ct = camp["channel_template"] or {}
    rows: dict[str, tuple[str, str, str, str]] = {}
    if camp["sender_mode"] != "exclude":
        rows[camp["sender_id"]] = (cid, camp["sender_id"], "channel_member", "{}")
    if receiver is not None:
        rows[receiver] = (cid, receiver, "channel_member", "{}")
    for m in ct.get("members") or []:
        rows.setdefault(m, (cid, m, "channel_member", "{}"))
    for m in ct.get("members_template") or []:
        rows[m["user_id"]] = (cid, m["user_id"], m.get("channel_role") or "channel_member",
                              orjson.dumps(m.get("custom") or {}).decode())
    return list(rows.values())


def build_user_batch(
    camp: asyncpg.Record, tpl: CampaignTemplates, ids: list[str], users: dict[str, dict[str, Any]],
    sender: dict[str, Any], existing: set[str] | None,
) -> Batch:
    """Render one batch of a user audience. existing: live channel cids (None = create_channels)."""
    b = Batch()
    ct = camp["channel_template"] or {}
    ctype = ct.get("type") or "messaging"
    const_custom = tpl.custom.constant
    const_ccustom = tpl.channel_custom.constant
    ccustom_json = orjson.dumps(tpl.channel_custom.value).decode()
    sid = sender["id"]
    for uid in ids:
        u = users.get(uid)
        if u is None:
            b.skip(uid, uid, None, "skipped", "user_not_found")
            continue
        ctx: dict[str, Any] = {"sender": sender, "receiver": u, "user": u}
        try:
            if tpl.channel_id is not None:
                chid = tpl.channel_id.render({**ctx, "channel": {"type": ctype}})
                if not ID_RE.match(chid):
                    raise RenderError(f"channel_template.id rendered an invalid channel id {chid[:80]!r}")
            else:
                chid = idgen.distinct_channel_id((sid, uid))
            cid = f"{ctype}:{chid}"
            if existing is not None and cid not in existing:
                b.skip(uid, uid, cid, "skipped", "channel_not_found")
                continue
            ccustom = tpl.channel_custom.value if const_ccustom else tpl.channel_custom.render(ctx)
            channel = {"id": chid, "type": ctype, "cid": cid, "custom": ccustom}
            if isinstance(ccustom, dict):
                channel = {**ccustom, **channel}
            ctx["channel"] = channel
            text = tpl.text.render(ctx)
            custom = "" if const_custom else orjson.dumps(tpl.custom.render(ctx)).decode()
        except RenderError as e:
            b.skip(uid, uid, None, "errored", str(e))
            continue
        if existing is None and cid not in b.new_channels:
            b.new_channels[cid] = (ctype, chid, ccustom_json if const_ccustom else orjson.dumps(ccustom).decode())
            b.members.extend(_member_rows(camp, cid, uid))
        b.targets.append(uid)
        b.users.append(uid)
        b.cids.append(cid)
        b.msg_ids.append(idgen.message_id(b.id_prefix, len(b.msg_ids)))
        b.statuses.append("sent")
        b.errors.append(None)
        b.texts.append(text)
        b.customs.append(custom)
    return b


def build_channel_batch(
    camp: asyncpg.Record, tpl: CampaignTemplates, ids: list[str], chans: dict[str, asyncpg.Record],
    receivers: dict[str, dict[str, Any]], sender: dict[str, Any],
) -> Batch:
    """Render one batch of a channel audience; receiver only in 1:1 channels with the sender."""
    b = Batch()
    const_custom = tpl.custom.constant
    for c in ids:
        ch = chans.get(c)
        if ch is None:
            b.skip(c, None, c, "skipped", "channel_not_found")
            continue
        channel = {**(ch["custom"] or {}), "id": ch["id"], "type": ch["type"], "cid": c,
                   "custom": ch["custom"] or {}, "team": ch["team"]}
        ctx: dict[str, Any] = {"sender": sender, "channel": channel}
        r = receivers.get(c)
        if r is not None:
            ctx["receiver"] = ctx["user"] = r
        try:
            text = tpl.text.render(ctx)
            custom = "" if const_custom else orjson.dumps(tpl.custom.render(ctx)).decode()
        except RenderError as e:
            b.skip(c, None, c, "errored", str(e))
            continue
        b.targets.append(c)
        b.users.append(r["id"] if r is not None else None)
        b.cids.append(c)
        b.msg_ids.append(idgen.message_id(b.id_prefix, len(b.msg_ids)))
        b.statuses.append("sent")
        b.errors.append(None)
        b.texts.append(text)
        b.customs.append(custom)
    return b


async def fetch_users(conn: Conn, app_id: int, ids: list[str]) -> dict[str, dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT id, name, role, teams, language, custom FROM users"
        " WHERE app_id = $1 AND id = ANY($2::text[]) AND deleted_at IS NULL", app_id, ids,
    )
    return {r["id"]: user_view(r) for r in rows}


async def live_channels(conn: Tx, app_id: int, cids: list[str]) -> dict[str, asyncpg.Record]:
    rows = await conn.fetch(
        "SELECT cid, type, id, team, custom FROM channels WHERE app_id = $1 AND cid = ANY($2::text[])"
        " AND deleted_at IS NULL", app_id, cids,
    )
    return {r["cid"]: r for r in rows}


async def one_to_one_receivers(
    conn: Tx, app_id: int, cids: list[str], sender: str,
) -> dict[str, str]:
    """cid -> the other member, for channels of exactly two members one of which is the sender."""
    rows = await conn.fetch(
        "SELECT cid, array_agg(user_id) AS m FROM members WHERE app_id = $1 AND cid = ANY($2::text[])"
        " GROUP BY cid HAVING count(*) = 2 AND bool_or(user_id = $3)", app_id, cids, sender,
    )
    return {r["cid"]: next(u for u in r["m"] if u != sender) for r in rows}


async def write_batch(
    conn: Tx, camp: asyncpg.Record, no: int, b: Batch, n: int, events: bool,
    sender: dict[str, Any],
) -> tuple[int, int, int, int]:
    """Write a rendered batch set-based; returns (sent, errored, skipped, channels_created)."""
    app_id, cid = camp["app_id"], camp["id"]
    created: list[str] = []
    if b.new_channels:
        keys = list(b.new_channels)
        counts: dict[str, int] = {}
        for m in b.members:
            counts[m[0]] = counts.get(m[0], 0) + 1
        ct = camp["channel_template"] or {}
        created = [r[0] for r in await conn.fetch(
            "INSERT INTO channels (app_id, cid, type, id, team, created_by_id, custom, member_count)"
            " SELECT $1, c, t, i, $5, $6, cu::jsonb, mc FROM unnest($2::text[], $3::text[], $4::text[],"
            " $7::text[], $8::int[]) AS x(c, t, i, cu, mc) ON CONFLICT DO NOTHING RETURNING cid",
            app_id, keys, [b.new_channels[k][0] for k in keys], [b.new_channels[k][1] for k in keys],
            ct.get("team"), camp["sender_id"], [b.new_channels[k][2] for k in keys],
            [counts.get(k, 0) for k in keys],
        )]
        made = set(created)
        ms = [m for m in b.members if m[0] in made]
        if ms:
            await conn.execute(
                "INSERT INTO members (app_id, cid, user_id, channel_role, custom)"
                " SELECT $1, c, u, r, cu::jsonb FROM unnest($2::text[], $3::text[], $4::text[], $5::text[])"
                " AS x(c, u, r, cu) ON CONFLICT DO NOTHING",
                app_id, [m[0] for m in ms], [m[1] for m in ms], [m[2] for m in ms], [m[3] for m in ms],
            )
    sent_idx = [i for i, s in enumerate(b.statuses) if s == "sent"]
    if camp["sender_mode"] == "include" and sent_idx:
        made = set(created)
        old = sorted({b.cids[i] for i in sent_idx} - made)  # type: ignore[type-var]
        if old:
            await conn.execute(
                "WITH ins AS (INSERT INTO members (app_id, cid, user_id) SELECT $1, c, $3"
                " FROM unnest($2::text[]) c ON CONFLICT DO NOTHING RETURNING cid)"
                " UPDATE channels SET member_count = member_count + 1 FROM ins"
                " WHERE channels.app_id = $1 AND channels.cid = ins.cid", app_id, old, camp["sender_id"],
            )
    mt = camp["message_template"]
    if sent_idx:
        await conn.execute(
            "INSERT INTO messages (app_id, id, cid, user_id, text, attachments, custom, campaign_id)"
            " SELECT $1, i, c, $4, t, $6::text::jsonb, (CASE WHEN cu = '' THEN $7 ELSE cu END)::jsonb, $8"
            " FROM unnest($2::text[], $3::text[], $5::text[], $9::text[]) AS x(i, c, t, cu)",
            app_id, [b.msg_ids[i] for i in sent_idx], [b.cids[i] for i in sent_idx], camp["sender_id"],
            b.texts, orjson.dumps(mt.get("attachments") or []).decode(),
            orjson.dumps(mt.get("custom") or {}).decode(), cid, b.customs,
        )
    await conn.execute(
        "INSERT INTO campaign_recipients (app_id, campaign_id, target_id, user_id, channel_cid,"
        " message_id, status, error, sent_at) SELECT $1, $2, t, u, c, m, s, e,"
        " CASE WHEN s = 'sent' THEN now() END"
        " FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[])"
        " AS x(t, u, c, m, s, e) ON CONFLICT DO NOTHING",
        app_id, cid, b.targets, b.users, b.cids, b.msg_ids, b.statuses, b.errors,
    )
    sent = len(sent_idx)
    errored = sum(1 for s in b.statuses if s == "errored")
    skipped = len(b.statuses) - sent - errored
    if events and (sent or created):
        await _events(conn, camp, b, sent_idx, created, sender, timefmt.now())
    await conn.execute(
        "UPDATE campaign_batches SET done = true, done_at = now(), n = $4, sent = $5, errored = $6,"
        " skipped = $7, channels_created = $8 WHERE app_id = $1 AND campaign_id = $2 AND batch_no = $3",
        app_id, cid, no, n, sent, errored, skipped, len(created),
    )
    return sent, errored, skipped, len(created)


async def _events(
    conn: Tx, camp: asyncpg.Record, b: Batch, sent_idx: list[int], created: list[str],
    sender: dict[str, Any], at: Any,
) -> None:
    from broadcaster.store import outbox

    ts = timefmt.fmt(at)
    mt = camp["message_template"]
    user = {"id": sender["id"], "name": sender.get("name", ""), "role": sender.get("role", "user")}
    evs: list[tuple[str, bytes | dict[str, Any]]] = []
    for c in created:
        ctype, chid, ccustom = b.new_channels[c]
        channel = {**orjson.loads(ccustom), "id": chid, "type": ctype, "cid": c,
                   "created_by": user, "created_at": ts, "updated_at": ts}
        evs.append(("channel.created", orjson.dumps({
            "type": "channel.created", "cid": c, "channel_type": ctype, "channel_id": chid,
            "channel": channel, "user": user, "created_at": ts})))
    for k, i in enumerate(sent_idx):
        c = b.cids[i] or ""
        ctype, _, chid = c.partition(":")
        custom = orjson.loads(b.customs[k]) if b.customs[k] else (mt.get("custom") or {})
        msg = {**custom, "id": b.msg_ids[i], "text": b.texts[k], "type": "regular", "user": user,
               "cid": c, "attachments": mt.get("attachments") or [], "campaign_id": camp["id"],
               "created_at": ts, "updated_at": ts}
        evs.append(("message.new", orjson.dumps({
            "type": "message.new", "cid": c, "channel_type": ctype, "channel_id": chid,
            "message": msg, "user": user, "created_at": ts})))
    await outbox.add_many(conn, camp["app_id"], camp["id"], evs)  # type: ignore[arg-type]


def _render_test(
    camp: asyncpg.Record, tpl: CampaignTemplates, ids: list[str], users: dict[str, dict[str, Any]],
    sender: dict[str, Any],
) -> Batch:
    # Off the event loop, under a tight batch budget (a test send over budget answers 400 anyway):
    # other tenants' requests keep being served (the loop takes the GIL back at every switch
    # interval) and the total is bounded.
    with batch_budget(TEST_SEND_SECONDS):
        return build_user_batch(camp, tpl, ids, users, sender, None)


async def send_test(
    conn: Tx, camp: asyncpg.Record, tpl: CampaignTemplates, user_ids: list[str],
) -> list[dict[str, Any]]:
    """Send the rendered message to these users now: channels as the campaign would use
    them, no ledger rows, no counters, no status change. Returns one entry per user."""
    srow = await conn.fetchrow(
        "SELECT id, name, role, teams, language, custom FROM users WHERE app_id = $1 AND id = $2",
        camp["app_id"], camp["sender_id"],
    )
    sender = user_view(srow) if srow else {"id": camp["sender_id"], "name": ""}
    ids = list(dict.fromkeys(user_ids))
    users = await fetch_users(conn, camp["app_id"], ids)
    b = await asyncio.to_thread(_render_test, camp, tpl, ids, users, sender)
    sent_idx = [i for i, s in enumerate(b.statuses) if s == "sent"]
    if b.new_channels:
        keys = list(b.new_channels)
        made = {r[0] for r in await conn.fetch(
            "INSERT INTO channels (app_id, cid, type, id, created_by_id, custom, member_count)"
            " SELECT $1, c, t, i, $5, cu::jsonb, 0 FROM unnest($2::text[], $3::text[], $4::text[], $6::text[])"
            " AS x(c, t, i, cu) ON CONFLICT DO NOTHING RETURNING cid",
            camp["app_id"], keys, [b.new_channels[k][0] for k in keys], [b.new_channels[k][1] for k in keys],
            camp["sender_id"], [b.new_channels[k][2] for k in keys],
        )}
        ms = [m for m in b.members if m[0] in made]
        await conn.execute(
            "INSERT INTO members (app_id, cid, user_id) SELECT $1, c, u FROM unnest($2::text[], $3::text[])"
            " AS x(c, u) ON CONFLICT DO NOTHING", camp["app_id"], [m[0] for m in ms], [m[1] for m in ms],
        )
        await conn.execute(
            "UPDATE channels SET member_count = (SELECT count(*) FROM members m WHERE m.app_id = $1"
            " AND m.cid = channels.cid) WHERE app_id = $1 AND cid = ANY($2::text[])", camp["app_id"], list(made),
        )
    mt = camp["message_template"]
    await conn.execute(
        "INSERT INTO messages (app_id, id, cid, user_id, text, attachments, custom)"
        " SELECT $1, i, c, $4, t, $6::text::jsonb, (CASE WHEN cu = '' THEN $7 ELSE cu END)::jsonb"
        " FROM unnest($2::text[], $3::text[], $5::text[], $8::text[]) AS x(i, c, t, cu)",
        camp["app_id"], [b.msg_ids[i] for i in sent_idx], [b.cids[i] for i in sent_idx], camp["sender_id"],
        b.texts, orjson.dumps(mt.get("attachments") or []).decode(),
        orjson.dumps(mt.get("custom") or {}).decode(), b.customs,
    )
    out: list[dict[str, Any]] = []
    k = 0
    for i, t in enumerate(b.targets):
        if b.statuses[i] == "sent":
            out.append({"user_id": t, "status": "sent", "channel_cid": b.cids[i], "message_id": b.msg_ids[i],
                        "text": b.texts[k]})
            k += 1
        else:
            out.append({"user_id": t, "status": b.statuses[i], "error": b.errors[i]})
    return out

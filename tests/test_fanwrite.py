"""The one-statement user batch (store/fanwrite) writes exactly what the row-building path
(store/fanout build_user_batch + write_batch) writes: channels, members, messages, ledger
rows, counters and outbox events, for the same campaign and audience."""

from __future__ import annotations

import re
import uuid
from typing import Any

import orjson

from broadcaster import timefmt
from broadcaster.store import campaigns, fanout, fanwrite
from broadcaster.store import webhooks as wh
from broadcaster.templating import compile_campaign, user_view
from tests.helpers import Api

IDS = ["ghost", "u1", "u2", "u3", "u4"]


async def make(api: Api, pool: Any, cid: str, ctype: str, **over: Any) -> Any:
    body = {
        "id": cid, "sender_id": "boss", "user_ids": IDS, "create_channels": True,
        "message_template": {"text": "Hi {{ receiver.name }} ({{ receiver.tier }}) in {{ channel.cid }}",
                             "custom": {"k": "{{ receiver.id }}", "fixed": 1},
                             "attachments": [{"type": "image", "asset_url": "https://x/y.png"}]},
        "channel_template": {"type": ctype, "custom": {"topic": "t-{{ receiver.name }}"},
                             "members_template": [{"user_id": "mod", "channel_role": "channel_moderator",
                                                   "custom": {"m": 1}}]},
        **over,
    }
    st, out = await api.post("/campaigns", body)
    assert st == 201, out
    await pool.execute(
        "INSERT INTO campaign_batches (app_id, campaign_id, batch_no, upto_id, n) VALUES ($1, $2, 0, 'zzz', 5)",
        api.creds.app_id, cid)
    await pool.execute(
        "INSERT INTO campaign_audience (app_id, campaign_id, target_id) SELECT $1, $2, unnest($3::text[])",
        api.creds.app_id, cid, IDS)
    return await campaigns.get(pool, api.creds.app_id, cid)


def norm(v: Any, cid: str, ctype: str) -> Any:
    """Strip what legitimately differs: generated ids, timestamps, the channel type, campaign id."""
    s = repr(v).replace(f"{ctype}:", "T:").replace(f"'{ctype}'", "'T'").replace(f"'{cid}'", "'C'")
    s = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "ID", s)
    return re.sub(r"\d{4}-\d\d-\d\dT[\d:.]+Z", "TS", s)


async def snapshot(pool: Any, app_id: int, cid: str, ctype: str) -> list[Any]:
    q = [
        ("SELECT id, type, team, created_by_id, custom, member_count FROM channels WHERE type = $2"
         " AND $1 <> '' ORDER BY cid"),
        "SELECT m.cid, user_id, channel_role, m.custom FROM members m JOIN channels c USING (app_id, cid)"
        " WHERE c.type = $2 AND $1 <> '' ORDER BY m.cid, user_id",
        "SELECT id, cid, user_id, text, custom FROM messages WHERE campaign_id = $1 AND $2 <> ''"
        " ORDER BY cid",
        "SELECT target_id, user_id, channel_cid, message_id IS NOT NULL, status, error, sent_at IS NOT NULL"
        " FROM campaign_recipients WHERE campaign_id = $1 AND $2 <> '' ORDER BY target_id",
        "SELECT n, sent, errored, skipped, channels_created, done FROM campaign_batches WHERE campaign_id = $1"
        " AND $2 <> ''",
        # bodies as the router delivers them (the one-statement path writes references)
        f"SELECT o.event_type, ({wh._BODY}) FROM outbox o {wh._REFS} WHERE o.campaign_id = $1"
        " AND $2 <> '' ORDER BY o.id",
    ]
    out = []
    for sql in q:
        rows = await pool.fetch(sql, cid, ctype)
        out.append(norm([tuple(r) for r in rows], cid, ctype))
    return out


async def test_one_statement_batch_equals_row_path(api: Api, pool: Any) -> None:
    app_id = api.creds.app_id
    await pool.execute(
        "INSERT INTO users (app_id, id, name, custom) VALUES ($1, 'boss', 'Boss', '{}'),"
        " ($1, 'u1', 'One', '{\"tier\": \"gold\"}'), ($1, 'u2', NULL, '{\"tier\": 2}'),"
        " ($1, 'u3', 'Three', '{}'), ($1, 'mod', 'Mod', '{}')", app_id)
    await pool.execute(
        "INSERT INTO users (app_id, id, name, deleted_at) VALUES ($1, 'u4', 'Gone', now())", app_id)
    # an excluded recipient already has its ledger row: neither path sends to it
    for cid in ("old", "new"):
        await pool.execute(
            "INSERT INTO campaign_recipients (app_id, campaign_id, target_id, status, error)"
            " VALUES ($1, $2, 'u3', 'skipped', 'excluded')", app_id, cid)
    old = await make(api, pool, "old", "otype")
    new = await make(api, pool, "new", "ntype")
    async with pool.acquire() as conn:
        srow = await conn.fetchrow("SELECT * FROM users WHERE app_id = $1 AND id = 'boss'", app_id)
        sender = user_view(srow)
        tpl = compile_campaign(old["message_template"], old["channel_template"])
        async with conn.transaction():
            have = {"u3"}
            ids = [i for i in IDS if i not in have]
            users = await fanout.fetch_users(conn, app_id, ids)
            b = fanout.build_user_batch(old, tpl, ids, users, sender, None)
            r_old = await fanout.write_batch(conn, old, 0, b, len(IDS), True, sender)
        tpl = compile_campaign(new["message_template"], new["channel_template"])
        async with conn.transaction():
            rows = await fanwrite.pending_users(conn, app_id, "new", None, "zzz")
            assert [r["id"] for r in rows] == ["ghost", "u1", "u2", "u4"]
            nb = fanwrite.render(new, tpl, rows, sender, None)
            sh = fanwrite.shape(new, tpl.text.source, tpl.custom.value, tpl.channel_custom.value)
            r_new = await fanwrite.write(conn, new, 0, sh, nb, len(IDS), True, sender,
                                         timefmt.fmt(timefmt.now()) or "")
    assert (*r_old, 0) == r_new == (2, 0, 2, 2, 0)
    a = await snapshot(pool, app_id, "old", "otype")
    z = await snapshot(pool, app_id, "new", "ntype")
    for x, y in zip(a, z, strict=True):
        assert x == y, "\n" + x + "\n" + y
    assert "Hi One (gold) in T:!members-" in a[2]
    # both paths store attachments as sent (a JSON array, not a JSON string)
    for camp in ("old", "new"):
        att = await pool.fetch("SELECT attachments FROM messages WHERE campaign_id = $1", camp)
        assert [r[0] for r in att] == [[{"type": "image", "asset_url": "https://x/y.png"}]] * 2
    # message ids are UUIDv7, consecutive within a batch, and each batch's ids match its
    # ledger rows (both paths)
    for camp in ("old", "new"):
        rows = await pool.fetch(
            "SELECT m.id, r.message_id FROM messages m JOIN campaign_recipients r"
            " ON r.campaign_id = m.campaign_id AND r.message_id = m.id WHERE m.campaign_id = $1"
            " ORDER BY m.id", camp)
        mids = [uuid.UUID(r[0]) for r in rows]
        assert len(mids) == 2 and all(m.version == 7 for m in mids)
        assert mids[1].int - mids[0].int == 1
    # the one-statement path stores references, not bodies; a message deleted before routing
    # still yields an event naming it
    refs = await pool.fetch("SELECT payload FROM outbox WHERE campaign_id = 'new' ORDER BY id")
    assert refs and all(set(r[0]) == {"ref", "user", "at"} for r in refs)
    gone = await pool.fetchval("DELETE FROM messages WHERE id = (SELECT min(id) FROM messages"
                               " WHERE campaign_id = 'new') RETURNING id")
    bodies = await pool.fetch(
        f"SELECT ({wh._BODY})::text FROM outbox o {wh._REFS} WHERE o.campaign_id = 'new'"
        " AND o.payload->>'ref' = $1", gone)
    body = orjson.loads(bodies[0][0])
    assert body["type"] == "message.new" and body["message"] == {"id": gone}
    assert body["user"]["id"] == "boss"

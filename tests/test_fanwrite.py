"""One send path (issue 11 item 3): user segments, sender_mode include, channel segments and
test sends all render and write through domain/render + store/fanwrite, so the channels,
members and messages they produce have the same shape. Table-driven over the audience kinds,
run by a real worker; each kind sends into channels of its own type so rows can be compared."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import Api, await_for

MT = {"text": "Hi {{ receiver.name }} ({{ receiver.tier }}) in {{ channel.type }}",
      "custom": {"k": "{{ receiver.id }}", "fixed": 1}, "poll_id": "poll-1",
      "attachments": [{"type": "image", "asset_url": "https://x/y.png"}]}


def channel_template(ctype: str) -> dict[str, Any]:
    return {"type": ctype, "team": "blue", "custom": {"topic": "t-{{ receiver.name }}"},
            "members_template": [{"user_id": "mod", "channel_role": "channel_moderator", "custom": {"m": 1}}]}


async def seed(api: Api, pool: Any) -> None:
    await pool.execute(
        "INSERT INTO users (app_id, id, name, custom) VALUES ($1, 'boss', 'Boss', '{}'),"
        " ($1, 'u1', 'One', '{\"tier\": \"gold\"}'), ($1, 'u2', 'Two', '{\"tier\": 2}'), ($1, 'mod', 'Mod', '{}')",
        api.creds.app_id)
    st, body = await api.post("/segments", {"id": "people", "type": "user"})
    assert st in (200, 201), body
    st, body = await api.post("/segments/people/addtargets", {"target_ids": ["u1", "u2", "ghost"]})
    assert st in (200, 201), body


async def run(api: Api, cid: str, **body: Any) -> dict[str, Any]:
    st, out = await api.post("/campaigns", {"id": cid, "sender_id": "boss", "skip_webhook": True,
                                            "message_template": MT, **body})
    assert st == 201, out
    st, out = await api.post(f"/campaigns/{cid}/start")
    assert st == 200, out

    async def done() -> dict[str, Any] | None:
        st, c = await api.get(f"/campaigns/{cid}")
        return c["campaign"] if c["campaign"]["status"] == "completed" else None
    return await await_for(done, timeout=30)  # type: ignore[no-any-return]


async def shapes(pool: Any, ctype: str) -> dict[str, Any]:
    """Channels, members and messages of one channel type, keyed by the non-staff member."""
    chans = {r["cid"]: r for r in await pool.fetch(
        "SELECT cid, team, created_by_id, custom, member_count FROM channels WHERE type = $1", ctype)}
    members = {}
    for r in await pool.fetch("SELECT cid, user_id, channel_role, custom FROM members m"
                              " WHERE cid LIKE $1 || ':%' ORDER BY user_id", ctype):
        members.setdefault(r["cid"], []).append((r["user_id"], r["channel_role"], r["custom"]))
    msgs = {r["cid"]: r for r in await pool.fetch(
        "SELECT cid, user_id, text, custom, attachments, campaign_id FROM messages WHERE cid LIKE $1 || ':%'", ctype)}
    out = {}
    for cid, ms in members.items():
        who = next(u for u, _, _ in ms if u not in ("boss", "mod"))
        m = msgs[cid]
        out[who] = {
            "channel": (chans[cid]["team"], chans[cid]["created_by_id"], chans[cid]["custom"],
                        chans[cid]["member_count"]),
            "members": sorted(ms),
            "message": (m["user_id"], m["text"].replace(ctype, "T"),
                        {k: v for k, v in m["custom"].items() if k != "campaign_test"},
                        m["attachments"], m["campaign_id"] is not None),
            "test": m["custom"].get("campaign_test"),
        }
    return out


@pytest.mark.parametrize("kind", ["user_segment", "include", "channel_segment", "test_send"])
async def test_every_audience_kind_writes_the_same_shapes(kind: str, api: Api, pool: Any, start_worker: Any) -> None:
    await seed(api, pool)
    start_worker()
    # the reference: a user segment, create_channels
    ref = await run(api, "ref", segment_ids=["people"], create_channels=True,
                    channel_template=channel_template("ref"))
    assert ref["stats"]["stats_messages_sent"] == 2 and ref["stats"]["stats_recipients_skipped"] == 1
    want = await shapes(pool, "ref")
    assert set(want) == {"u1", "u2"}
    assert want["u1"]["message"] == ("boss", "Hi One (gold) in T", {"k": "u1", "fixed": 1, "poll_id": "poll-1"},
                                     [{"type": "image", "asset_url": "https://x/y.png"}], True)
    assert want["u1"]["channel"] == ("blue", "boss", {"topic": "t-One"}, 3)
    assert want["u1"]["members"] == [("boss", "channel_member", {}), ("mod", "channel_moderator", {"m": 1}),
                                     ("u1", "channel_member", {})]
    if kind == "user_segment":
        await run(api, "other", segment_ids=["people"], create_channels=True, channel_template=channel_template("k"))
        got = await shapes(pool, "k")
    elif kind == "include":
        # u1's channel exists already without the sender: include adds it, once
        await pool.execute(
            "INSERT INTO channels (app_id, cid, type, id, team, created_by_id, custom, member_count, pair_lo, pair_hi)"
            " SELECT app_id, 'k:' || id, 'k', id, team, created_by_id, custom, 2, pair_lo, pair_hi FROM channels"
            " WHERE cid = (SELECT cid FROM members WHERE user_id = 'u1' AND cid LIKE 'ref:%')")
        await pool.execute(
            "INSERT INTO members (app_id, cid, user_id, channel_role, custom) SELECT app_id, 'k:' || split_part(cid, ':', 2),"
            " user_id, channel_role, custom FROM members WHERE cid LIKE 'ref:%' AND user_id <> 'boss'"
            " AND cid = (SELECT cid FROM members WHERE user_id = 'u1' AND cid LIKE 'ref:%')")
        done = await run(api, "incl", segment_ids=["people"], create_channels=True, sender_mode="include",
                         channel_template=channel_template("k"))
        assert done["stats"]["stats_channels_created"] == 1
        got = await shapes(pool, "k")
    elif kind == "channel_segment":
        # the reference's channels, as a channel segment (plus a deleted one: skipped)
        cids = [r[0] for r in await pool.fetch("SELECT cid FROM channels WHERE type = 'ref' ORDER BY cid")]
        st, body = await api.post("/segments", {"id": "rooms", "type": "channel"})
        assert st in (200, 201), body
        st, body = await api.post("/segments/rooms/addtargets", {"target_ids": [*cids, "ref:gone"]})
        assert st in (200, 201), body
        await pool.execute("DELETE FROM messages")
        done = await run(api, "rooms", segment_ids=["rooms"])
        assert done["stats"]["stats_messages_sent"] == 2 and done["stats"]["stats_recipients_skipped"] == 1
        got = await shapes(pool, "ref")
        # 3 members: not 1:1, so `receiver` is empty in the text and the custom template
        for g in got.values():
            assert g["message"][1] == "Hi  () in T" and g["message"][2]["k"] == ""
        want = {u: {**w, "message": (w["message"][0], "Hi  () in T", {**w["message"][2], "k": ""},
                                     *w["message"][3:])} for u, w in want.items()}
    else:
        st, out = await api.post("/campaigns", {"id": "t", "sender_id": "boss", "message_template": MT, "user_ids": ["u1"],
                                                "create_channels": True, "channel_template": channel_template("k")})
        assert st == 201, out
        st, out = await api.post("/campaigns/t/test", {"users": ["u1", "u2", "ghost"]})
        assert st == 200, out
        assert [(s["user_id"], s["status"]) for s in out["sent"]] == [("u1", "sent"), ("u2", "sent"), ("ghost", "skipped")]
        assert out["sent"][0]["text"] == "Hi One (gold) in k"
        got = await shapes(pool, "k")
        assert {g["test"] for g in got.values()} == {True}
        assert await pool.fetchval("SELECT count(*) FROM campaign_recipients WHERE campaign_id = 't'") == 0
    for g in got.values():
        g.pop("test", None)
    for w in want.values():
        w.pop("test", None)
    assert got == want


async def test_test_send_never_creates_a_channel_the_campaign_would_not(api: Api, pool: Any) -> None:
    await seed(api, pool)
    await pool.execute(
        "INSERT INTO channels (app_id, cid, type, id) VALUES ($1, 'messaging:u1-room', 'messaging', 'u1-room')",
        api.creds.app_id)
    st, out = await api.post("/campaigns", {
        "id": "nc", "sender_id": "boss", "user_ids": ["u1", "u2"], "message_template": {"text": "hey"},
        "channel_template": {"type": "messaging", "id": "{{ receiver.id }}-room"}})
    assert st == 201, out
    st, out = await api.post("/campaigns/nc/test", {"users": ["u1", "u2"]})
    assert st == 200, out
    assert [(s["user_id"], s["status"], s.get("error")) for s in out["sent"]] == [
        ("u1", "sent", None), ("u2", "skipped", "channel_not_found")]
    assert [r[0] for r in await pool.fetch("SELECT cid FROM channels")] == ["messaging:u1-room"]
    m = await pool.fetchrow("SELECT cid, campaign_id, custom FROM messages")
    assert tuple(m) == ("messaging:u1-room", "nc", {"campaign_test": True})

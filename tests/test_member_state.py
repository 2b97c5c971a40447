"""Hide, show, archive and pin per member through the official SDK, seen through QueryChannels."""

from __future__ import annotations

from typing import Any

import pytest
from stream_chat.base.exceptions import StreamAPIException


def _cids(sdk: Any, user: str, **flt: Any) -> list[str]:
    res = sdk.query_channels({"members": {"$in": [user]}, **flt}, {"cid": 1}, user_id=user)
    return [c["channel"]["cid"] for c in res["channels"]]


def test_hide_show_archive_through_query_channels(sdk: Any) -> None:
    sdk.upsert_users([{"id": "shop"}, {"id": "ann"}, {"id": "bob"}])
    chans = {}
    for name in ("a", "b", "c"):
        ch = sdk.channel("messaging", name, {"members": ["shop", "ann"]})
        ch.create("shop")
        chans[name] = ch
    everything = ["messaging:a", "messaging:b", "messaging:c"]
    assert _cids(sdk, "shop") == everything

    chans["a"].hide("shop")
    assert _cids(sdk, "shop") == ["messaging:b", "messaging:c"]
    assert _cids(sdk, "shop", hidden=True) == ["messaging:a"]
    assert _cids(sdk, "ann") == everything  # hidden for shop only
    # the shop's own message does not bring it back; someone else writing does
    chans["a"].send_message({"text": "from shop"}, "shop")
    assert _cids(sdk, "shop", hidden=True) == ["messaging:a"]
    chans["a"].send_message({"text": "reply"}, "ann")
    assert _cids(sdk, "shop") == everything
    chans["b"].hide("shop")
    chans["b"].show("shop")
    assert _cids(sdk, "shop") == everything

    got = chans["c"].archive("shop")
    assert got["channel_member"]["user_id"] == "shop" and got["channel_member"]["archived_at"].endswith("Z")
    assert _cids(sdk, "shop") == ["messaging:a", "messaging:b"]
    assert _cids(sdk, "shop", archived=True) == ["messaging:c"]
    assert _cids(sdk, "shop", archived={"$eq": False}) == ["messaging:a", "messaging:b"]
    chans["c"].pin("shop")
    assert _cids(sdk, "shop", archived=True, pinned=True) == ["messaging:c"]
    chans["c"].unarchive("shop")
    assert _cids(sdk, "shop") == everything
    assert _cids(sdk, "shop", pinned=True) == ["messaging:c"]
    # custom member data through the same partial update
    upd = chans["c"].update_member_partial("ann", {"nickname": "A"}, [])
    assert upd["channel_member"]["nickname"] == "A"
    # without a user there is no per-member state to filter on
    assert len(sdk.query_channels({"members": {"$in": ["shop"]}})["channels"]) == 3


def test_member_state_bad_input(sdk: Any) -> None:
    sdk.upsert_users([{"id": "shop"}, {"id": "ann"}, {"id": "bob"}])
    ch = sdk.channel("messaging", "x", {"members": ["shop", "ann"]})
    ch.create("shop")
    cases = [
        (lambda: ch.hide("bob"), 400, "not a member"),
        (lambda: sdk.channel("messaging", "nope").hide("shop"), 404, "nope"),
        (lambda: sdk.query_channels({"hidden": True}), 400, "user_id"),
        (lambda: sdk.query_channels({"hidden": "yes"}, user_id="shop"), 400, "filter_conditions.hidden"),
        (lambda: ch.update_member_partial("shop", {"archived": "yes"}), 400, "set.archived"),
        (lambda: ch.update_member_partial("shop", {"channel_role": "admin"}), 400, "channel_role"),
        (lambda: ch.archive("bob"), 404, "bob"),
    ]
    for call, status, words in cases:
        with pytest.raises(StreamAPIException) as e:
            call()
        assert e.value.status_code == status and words in e.value.error_message, (words, e.value.error_message)


def test_campaign_sender_visibility_and_show_channels(sdk: Any, start_worker: Any) -> None:
    from tests.helpers import wait_for

    sdk.upsert_users([{"id": "shop"}, *({"id": f"r{i}"} for i in range(3))])
    # r0 hid the channel it already has with the shop; r1 hid its own, the campaign shows it
    for r in ("r0", "r1"):
        sdk.channel("messaging", f"{r}-shop", {"members": ["shop", r]}).create("shop")
        sdk.channel("messaging", f"{r}-shop").hide(r)
    start_worker()

    def run(cid: str, **extra: Any) -> None:
        c = sdk.campaign(campaign_id=cid, data={
            "user_ids": ["r0", "r1", "r2"], "sender_id": "shop", "message_template": {"text": "hi"},
            "create_channels": True, "channel_template": {"type": "messaging", "id": "{{ receiver.id }}-shop"},
            **extra})
        c.create()
        c.start()
        wait_for(lambda: c.get()["campaign"]["status"] == "completed", timeout=60)

    run("first", sender_visibility="hidden")
    assert _cids(sdk, "shop") == []
    assert _cids(sdk, "shop", hidden=True) == ["messaging:r0-shop", "messaging:r1-shop", "messaging:r2-shop"]
    # without show_channels the campaign's message does not un-hide a recipient's channel
    assert _cids(sdk, "r0") == [] and _cids(sdk, "r0", hidden=True) == ["messaging:r0-shop"]
    assert _cids(sdk, "r2") == ["messaging:r2-shop"]

    run("second", sender_visibility="archived", show_channels=True)
    assert _cids(sdk, "r0") == ["messaging:r0-shop"] and _cids(sdk, "r1") == ["messaging:r1-shop"]
    assert _cids(sdk, "shop", hidden=True, archived=True) == [
        "messaging:r0-shop", "messaging:r1-shop", "messaging:r2-shop"]
    # a recipient's reply brings the channel back for the shop (still archived, though)
    sdk.channel("messaging", "r2-shop").send_message({"text": "thanks"}, "r2")
    assert _cids(sdk, "shop", archived=True) == ["messaging:r2-shop"]


async def test_campaign_visibility_update_probes_each_channel(pool: Any) -> None:
    """The sender is a member of every channel of its campaigns: the batch's member update must
    probe the primary key once per channel, never walk the sender's rows (that plan was
    quadratic in the campaign's size: 54 s for one batch of a 50,000-recipient campaign)."""
    from broadcaster.store import members as channels

    await pool.execute("INSERT INTO members (app_id, cid, user_id) SELECT 1, 'messaging:c' || g, u"
                       " FROM generate_series(1, 20000) g, unnest(ARRAY['shop', 'r' || g]) u")
    cids = [f"messaging:c{g}" for g in range(100, 2100)]
    for analyze in (False, True):  # right after a campaign's inserts the statistics know nothing
        if analyze:
            await pool.execute("ANALYZE members")
        async with pool.acquire() as conn, conn.transaction():
            for set_sql, where in (("hidden = true", "x.user_id = $3 AND NOT x.hidden"),
                                   ("hidden = false", "x.user_id <> $3 AND x.hidden")):
                plan = "\n".join(await channels.each_member(conn, set_sql, where, 1, cids, "shop", explain=True))
                assert "members_pkey" in plan and "members_app_user" not in plan, plan
                assert "Seq Scan" not in plan and "Hash" not in plan, plan
            assert await conn.fetchval("SHOW enable_seqscan") == "on"  # restored for the caller

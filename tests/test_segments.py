"""Segment resources: create/get/update/delete/query, validation, delete guard, background size."""

from __future__ import annotations

import asyncpg

from tests.helpers import Api, assert_error, await_for


async def _count(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM segments"))


async def _users(pool: asyncpg.Pool, app_id: int, n: int, **custom: object) -> None:
    await pool.execute(
        "INSERT INTO users (app_id, id, name, custom) SELECT $1, 'u' || lpad(g::text, 4, '0'),"
        " 'User ' || g, jsonb_build_object('tier', CASE WHEN g % 2 = 0 THEN 'gold' ELSE 'free' END)"
        " FROM generate_series(1, $2) g",
        app_id, n,
    )


async def test_create_get_update_delete(api: Api, other_api: Api):
    st, body = await api.post("/segments", {"type": "user", "id": "vip", "name": "VIPs",
                                            "description": "big spenders"})
    assert st == 201, body
    seg = body["segment"]
    assert seg["id"] == "vip" and seg["type"] == "user" and seg["name"] == "VIPs"
    assert seg["filter"] is None and seg["all_users"] is False and seg["size"] == 0
    assert seg["created_at"].endswith("Z") and seg["updated_at"].endswith("Z")
    st, body = await api.post("/segments", {"type": "channel", "id": None})
    assert st == 201 and len(body["segment"]["id"]) == 36, body  # generated when null/absent
    st, body = await api.post("/segments", {"type": "user", "id": "vip"})
    assert_error(st, body, 409, 4, "vip")
    st, body = await api.get("/segments/vip")
    assert st == 200 and body["segment"]["description"] == "big spenders"
    st, body = await other_api.get("/segments/vip")
    assert_error(st, body, 404, 16, "vip")
    st, body = await api.put("/segments/vip", {"name": "VIP", "filter": {"tier": "gold"}})
    assert_error(st, body, 400, 4, "filter", "explicit")
    st, body = await api.put("/segments/vip", {"name": "VIP"})
    assert st == 200 and body["segment"]["name"] == "VIP" and body["segment"]["description"] == "big spenders"
    st, body = await other_api.delete("/segments/vip")
    assert_error(st, body, 404, 16)
    st, body = await api.delete("/segments/vip")
    assert st == 200, body
    st, body = await api.get("/segments/vip")
    assert_error(st, body, 404, 16, "vip")
    st, body = await api.post("/segments", {"type": "user", "id": "vip"})
    assert st == 201 and body["segment"]["size"] == 0  # the id is free again, targets gone


async def test_bad_create_input_is_400_and_writes_nothing(api: Api, pool: asyncpg.Pool):
    cases = [
        ({}, "type"),
        ({"type": "robot"}, "type"),
        ({"type": "user", "id": "has space"}, "id"),
        ({"type": "user", "filter": {"a": 1}, "all_users": True}, "mutually exclusive"),
        ({"type": "channel", "filter": {"a": 1}, "all_sender_channels": True}, "mutually exclusive"),
        ({"type": "user", "all_users": True, "all_sender_channels": True}, "mutually exclusive"),
        ({"type": "channel", "all_users": True}, "all_users"),
        ({"type": "user", "all_sender_channels": True}, "all_sender_channels"),
        ({"type": "user", "filter": "tier=gold"}, "filter"),
        ({"type": "user", "filter": {"tier": {"$regex": "g"}}}, "$regex"),
        ({"type": "user", "filter": {"created_at": {"$gt": "yesterday"}}}, "created_at"),
        ({"type": "channel", "filter": {"member_count": {"$gt": "many"}}}, "member_count"),
        ({"type": "user", "name": 5}, "name"),
        ({"type": "user", "all_users": "yes"}, "all_users"),
    ]
    for payload, words in cases:
        st, body = await api.post("/segments", payload)
        assert_error(st, body, 400, 4, words)
    assert await _count(pool) == 0


async def test_delete_refused_while_campaign_live(api: Api, pool: asyncpg.Pool, creds):
    await api.post("/segments", {"type": "user", "id": "s"})
    for status in ("scheduled", "in_progress"):
        await pool.execute(
            "INSERT INTO campaigns (app_id, id, status, segment_ids, sender_id, message_template)"
            " VALUES ($1, $2, $3, ARRAY['s'], 'sender', '{}') ON CONFLICT (app_id, id)"
            " DO UPDATE SET status = EXCLUDED.status",
            creds.app_id, "c1", status,
        )
        st, body = await api.delete("/segments/s")
        assert_error(st, body, 400, 4, status, "c1")
    await pool.execute("UPDATE campaigns SET status = 'completed'")
    st, body = await api.delete("/segments/s")
    assert st == 200, body


async def test_query_filter_sort_and_cursors(api: Api, other_api: Api):
    for i in range(7):
        await api.post("/segments", {"type": "user" if i % 2 else "channel", "id": f"seg{i}",
                                     "name": f"n{i}"})
    await other_api.post("/segments", {"type": "user", "id": "foreign"})
    st, body = await api.post("/segments/query", {"filter": {"type": "user"}})
    assert st == 200, body
    assert [s["id"] for s in body["segments"]] == ["seg1", "seg3", "seg5"]
    st, body = await api.post("/segments/query", {"filter": {"id": {"$in": ["seg2", "foreign"]}}})
    assert [s["id"] for s in body["segments"]] == ["seg2"]
    sort = [{"field": "name", "direction": -1}]
    seen: list[str] = []
    payload: dict = {"sort": sort, "limit": 3}
    while True:
        st, body = await api.post("/segments/query", payload)
        assert st == 200, body
        seen += [s["id"] for s in body["segments"]]
        if "next" not in body:
            break
        payload = {"sort": sort, "limit": 3, "next": body["next"]}
    assert seen == [f"seg{i}" for i in reversed(range(7))]
    st, p1 = await api.post("/segments/query", {"sort": sort, "limit": 3})
    st, p2 = await api.post("/segments/query", {"sort": sort, "limit": 3, "next": p1["next"]})
    st, back = await api.post("/segments/query", {"sort": sort, "limit": 3, "prev": p2["prev"]})
    assert [s["id"] for s in back["segments"]] == ["seg6", "seg5", "seg4"] and "prev" not in back
    for payload, words in [
        ({"limit": -1}, "limit"), ({"limit": 1001}, "limit"),
        ({"filter": {"size": 3}}, "size"), ({"sort": [{"field": "bogus", "direction": 1}]}, "bogus"),
        ({"sort": sort, "next": "forged" + p1["next"]}, "next"),
    ]:
        st, body = await api.post("/segments/query", payload)
        assert_error(st, body, 400, 4, words)
    # the cursor carries its filter and sort: whatever the request sends besides, it goes on
    st, body = await api.post("/segments/query", {"limit": 3, "next": p1["next"], "filter": {"type": "user"}})
    assert [s["id"] for s in body["segments"]] == ["seg3", "seg2", "seg1"], body
    st, body = await api.post("/segments/query", {"limit": 0})
    assert st == 200 and len(body["segments"]) == 7
    st, body = await other_api.post("/segments/query", {"sort": sort, "limit": 3, "next": p1["next"]})
    assert_error(st, body, 400, 4, "another resource")


async def test_background_size(api: Api, pool: asyncpg.Pool, creds, start_worker):
    await _users(pool, creds.app_id, 40)
    await pool.execute("UPDATE users SET deleted_at = now() WHERE app_id = $1 AND id = 'u0002'", creds.app_id)
    start_worker()
    st, body = await api.post("/segments", {"type": "user", "id": "gold", "filter": {"tier": "gold"}})
    assert st == 201 and body["segment"]["size"] is None, body  # answered at once
    await api.post("/segments", {"type": "user", "id": "all", "all_users": True})
    st, body = await api.post("/segments", {"type": "channel", "id": "mine", "all_sender_channels": True})
    assert body["segment"]["size"] is None

    async def size(seg_id: str) -> int | None:
        st, body = await api.get(f"/segments/{seg_id}")
        return body["segment"]["size"]

    await await_for(lambda: _is(size("gold"), 19))  # 20 gold, one of them deleted
    await await_for(lambda: _is(size("all"), 39))
    st, body = await api.put("/segments/gold", {"filter": {"tier": "free"}})
    assert st == 200 and body["segment"]["size"] is None
    await await_for(lambda: _is(size("gold"), 20))
    st, body = await api.put("/segments/gold", {"filter": {"nope": {"$bad": 1}}})
    assert_error(st, body, 400, 4, "$bad")
    assert await size("mine") is None
    # deleting an explicit list leaves its targets to the purge job
    await api.post("/segments", {"type": "user", "id": "list"})
    await api.post("/segments/list/addtargets", {"target_ids": [f"t{i}" for i in range(300)]})
    assert await pool.fetchval("SELECT count(*) FROM segment_targets") == 300
    st, body = await api.delete("/segments/list")
    assert st == 200, body

    async def purged() -> bool:
        return await pool.fetchval("SELECT count(*) FROM segment_targets") == 0

    await await_for(purged)


async def _is(coro, expected) -> bool:
    return (await coro) == expected

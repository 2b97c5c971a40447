"""Channels over HTTP: get-or-create, distinct channels, messages, read state, queries, deletes."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from broadcaster.ids import distinct_channel_id
from tests.helpers import Api, assert_error


async def seed_users(api: Api, *ids: str) -> None:
    status, body = await api.post("/users", {"users": {u: {"id": u, "name": u.title()} for u in ids}})
    assert status == 200, body


async def create(api: Api, cid_id: str, creator: str = "owner", members: list[Any] | None = None,
                 **data: Any) -> dict[str, Any]:
    status, body = await api.post(f"/channels/messaging/{cid_id}/query", {
        "data": {"created_by_id": creator, "members": members or [], **data}, "state": True})
    assert status == 200, body
    return body


async def send(api: Api, cid_id: str, text: str, user: str = "owner", **extra: Any) -> dict[str, Any]:
    status, body = await api.post(f"/channels/messaging/{cid_id}/message",
                                  {"message": {"text": text, "user_id": user, **extra}})
    assert status == 200, body
    return body["message"]


async def test_get_or_create_with_members_and_custom(api: Api, pool: asyncpg.Pool) -> None:
    await seed_users(api, "owner", "ann", "ben")
    body = await create(api, "general", members=["ann", {"user_id": "ben"}, "ann"], team="red", color="blue")
    ch = body["channel"]
    assert ch["cid"] == "messaging:general" and ch["type"] == "messaging" and ch["id"] == "general"
    assert ch["team"] == "red" and ch["color"] == "blue" and ch["member_count"] == 2
    assert ch["created_by"]["id"] == "owner" and ch["created_by"]["name"] == "Owner"
    assert ch["created_at"].endswith("Z") and body["created"] is True
    assert sorted(m["user_id"] for m in body["members"]) == ["ann", "ben"]
    assert body["members"][0]["user"]["name"] in ("Ann", "Ben")
    assert body["messages"] == [] and body["read"] == []

    # Second call gets the same channel; data of an existing channel is not changed.
    status, again = await api.post("/channels/messaging/general/query", {"data": {"created_by": {"id": "ann"}, "color": "x"}})
    assert status == 200 and again["created"] is False
    assert again["channel"]["color"] == "blue" and again["channel"]["created_at"] == ch["created_at"]
    assert await pool.fetchval("SELECT count(*) FROM members") == 2


async def test_create_errors(api: Api) -> None:
    await seed_users(api, "owner")
    status, body = await api.post("/channels/messaging/x/query", {"data": {}})
    assert_error(status, body, 400, 4, "data.created_by_id")
    status, body = await api.post("/channels/messaging/x/query", {"data": {"created_by_id": "nobody"}})
    assert_error(status, body, 400, 4, "data.created_by_id", "nobody")
    status, body = await api.post("/channels/messaging/x/query", {"data": {"created_by_id": "owner", "members": ["ghost"]}})
    assert_error(status, body, 400, 4, "data.members", "ghost")
    status, body = await api.post("/channels/messaging/x/query", {"data": {"created_by_id": "owner", "members": [5]}})
    assert_error(status, body, 400, 4, "data.members[0]")
    status, body = await api.post("/channels/messaging/x/query", {"data": {"created_by_id": "owner"}, "messages": {"limit": 301}})
    assert_error(status, body, 400, 4, "messages.limit")
    status, body = await api.post("/channels/bad type/x/query", {"data": {"created_by_id": "owner"}})
    assert_error(status, body, 400, 4, "type")


async def test_distinct_channel(api: Api) -> None:
    await seed_users(api, "owner", "ann")
    status, body = await api.post("/channels/messaging/query", {"data": {"created_by_id": "owner", "members": ["owner", "ann"]}})
    assert status == 200, body
    # a 1:1 distinct channel: a time-ordered id, found again by its member pair (store/distinct)
    assert body["channel"]["id"].startswith("!members-") and body["channel"]["id"] != distinct_channel_id(["ann", "owner"])
    assert body["channel"]["member_count"] == 2 and body["created"] is True
    status, again = await api.post("/channels/messaging/query", {"data": {"created_by_id": "ann", "members": ["ann", {"user_id": "owner"}]}})
    assert status == 200 and again["channel"]["cid"] == body["channel"]["cid"] and again["created"] is False
    status, body = await api.post("/channels/messaging/query", {"data": {"created_by_id": "owner"}})
    assert_error(status, body, 400, 4, "data.members")


async def test_messages_newest_last_with_limit(api: Api) -> None:
    await seed_users(api, "owner", "ann")
    await create(api, "talk", members=["owner", "ann"])
    first = await send(api, "talk", "hello", attachments=[{"type": "image", "url": "http://x/y.png"}], mood="happy")
    assert first["text"] == "hello" and first["type"] == "regular" and first["cid"] == "messaging:talk"
    assert first["user"]["id"] == "owner" and first["user"]["name"] == "Owner"
    assert first["attachments"] == [{"type": "image", "url": "http://x/y.png"}] and first["mood"] == "happy"
    assert "campaign_id" not in first
    status, body = await api.post("/channels/messaging/talk/message", {"message": {"text": "hi", "user": {"id": "ann"}, "id": "m-2"}})
    assert status == 200 and body["message"]["id"] == "m-2" and body["message"]["user"]["id"] == "ann"
    for i in range(3):
        await send(api, "talk", f"n{i}")

    status, body = await api.post("/channels/messaging/talk/query", {"messages": {"limit": 2}})
    assert status == 200
    assert [m["text"] for m in body["messages"]] == ["n1", "n2"]
    status, body = await api.post("/channels/messaging/talk/query", {})
    assert [m["text"] for m in body["messages"]] == ["hello", "hi", "n0", "n1", "n2"]


async def test_send_message_errors(api: Api) -> None:
    await seed_users(api, "owner")
    await create(api, "c1")
    status, body = await api.post("/channels/messaging/nope/message", {"message": {"text": "x", "user_id": "owner"}})
    assert_error(status, body, 404, 16, "messaging:nope")
    status, body = await api.post("/channels/messaging/c1/message", {"message": {"text": "x", "user_id": "ghost"}})
    assert_error(status, body, 400, 4, "message.user_id", "ghost")
    status, body = await api.post("/channels/messaging/c1/message", {"message": {"text": "x"}})
    assert_error(status, body, 400, 4, "message.user_id")
    status, body = await api.post("/channels/messaging/c1/message", {"message": {"text": 5, "user_id": "owner"}})
    assert_error(status, body, 400, 4, "message.text")
    await send(api, "c1", "x", id="dup")
    status, body = await api.post("/channels/messaging/c1/message", {"message": {"text": "x", "user_id": "owner", "id": "dup"}})
    assert_error(status, body, 409, 4, "message.id")


async def test_mark_read_and_unread_counts(api: Api) -> None:
    await seed_users(api, "owner", "ann")
    await create(api, "r", members=["owner", "ann"])
    await send(api, "r", "one")
    status, body = await api.post("/channels/messaging/r/read", {"user": {"id": "ann"}})
    assert status == 200, body
    assert body["event"]["type"] == "message.read" and body["event"]["user"]["id"] == "ann"
    await send(api, "r", "two")
    await send(api, "r", "three")
    await send(api, "r", "mine", user="ann")
    status, body = await api.post("/channels/messaging/r/query", {})
    (read,) = body["read"]
    assert read["user"]["id"] == "ann" and read["unread_messages"] == 2 and read["last_read"].endswith("Z")
    status, body = await api.post("/channels/messaging/r/read", {"user_id": "ann"})
    assert status == 200
    status, body = await api.post("/channels/messaging/r/query", {})
    assert body["read"][0]["unread_messages"] == 0

    status, body = await api.post("/channels/messaging/none/read", {"user_id": "ann"})
    assert_error(status, body, 404, 16)
    status, body = await api.post("/channels/messaging/r/read", {"user_id": "ghost"})
    assert_error(status, body, 400, 4, "ghost")
    status, body = await api.post("/channels/messaging/r/read", {})
    assert_error(status, body, 400, 4, "user_id")


async def cids(api: Api, **body: Any) -> list[str]:
    status, out = await api.post("/channels", body)
    assert status == 200, out
    return [c["channel"]["cid"] for c in out["channels"]]


async def test_query_channels(api: Api) -> None:
    await seed_users(api, "owner", "ann", "ben")
    await create(api, "a", members=["ann"], team="red", topic="sports")
    await create(api, "b", members=["ann", "ben"], topic="news", level=3)
    await create(api, "c", creator="ben", members=["ben"], level=7)
    await send(api, "b", "latest")

    assert await cids(api, filter_conditions={"members": {"$in": ["ann"]}}, sort=[{"field": "id", "direction": 1}]) == ["messaging:a", "messaging:b"]
    assert await cids(api, filter_conditions={"level": {"$gte": 3}}, sort=[{"field": "cid", "direction": -1}]) == ["messaging:c", "messaging:b"]
    assert await cids(api, filter_conditions={"team": "red"}) == ["messaging:a"]
    assert await cids(api, filter_conditions={"created_by_id": "ben"}) == ["messaging:c"]
    assert await cids(api, filter_conditions={"type": "messaging"}, sort=[{"field": "id", "direction": 1}], limit=1, offset=1) == ["messaging:b"]
    assert await cids(api, filter_conditions={"$or": [{"topic": "sports"}, {"member_count": {"$gt": 1}}]},
                      sort=[{"field": "id", "direction": 1}]) == ["messaging:a", "messaging:b"]
    status, body = await api.post("/channels", {"filter_conditions": {"cid": "messaging:b"}})
    (state,) = body["channels"]
    assert [m["text"] for m in state["messages"]] == ["latest"] and len(state["members"]) == 2

    status, body = await api.post("/channels", {"filter_conditions": {"members": {"$gt": "x"}}})
    assert_error(status, body, 400, 4, "filter_conditions.members.$gt")
    status, body = await api.post("/channels", {"filter_conditions": {}, "sort": [{"field": "nope", "direction": 1}]})
    assert_error(status, body, 400, 4, "sort[0].field")
    status, body = await api.post("/channels", {"filter_conditions": {}, "limit": 0})
    assert_error(status, body, 400, 4, "limit")


async def test_delete_channels_soft_and_hard(api: Api, pool: asyncpg.Pool) -> None:
    await seed_users(api, "owner", "ann")
    for c in ("s", "h"):
        await create(api, c, members=["ann"])
        await send(api, c, "m")
        await api.post(f"/channels/messaging/{c}/read", {"user_id": "ann"})
    status, body = await api.post("/channels/delete", {"cids": ["messaging:s", "messaging:nope"]})
    assert status == 200 and body["task_id"]
    assert body["result"]["messaging:s"]["status"] == "ok" and body["result"]["messaging:nope"]["status"] == "not_found"
    assert await cids(api, filter_conditions={}) == ["messaging:h"]
    status, body = await api.post("/channels/messaging/s/message", {"message": {"text": "x", "user_id": "ann"}})
    assert_error(status, body, 404, 16)

    status, body = await api.post("/channels/delete", {"cids": ["messaging:h"], "hard_delete": True})
    assert status == 200
    for table in ("channels", "members", "messages", "channel_reads"):
        assert await pool.fetchval(f"SELECT count(*) FROM {table} WHERE cid = 'messaging:h'") == 0, table
    assert await pool.fetchval("SELECT count(*) FROM messages WHERE cid = 'messaging:s'") == 1
    status, body = await api.post("/channels/delete", {"cids": ["not-a-cid"]})
    assert_error(status, body, 400, 4, "cids[0]")

    # Deleting a user leaves its channels, and their messages show the bare user id.
    await api.delete("/users/ann", params={"hard_delete": "true"})
    body = await create(api, "s")  # revives the soft-deleted channel
    assert body["created"] is True and [m["user_id"] for m in body["members"]] == ["ann"]
    assert body["members"][0]["user"] == {"id": "ann"}


async def test_channels_are_invisible_to_another_app(api: Api, other_api: Api) -> None:
    await seed_users(api, "owner", "ann")
    await create(api, "private", members=["ann"], secret=1)
    await send(api, "private", "psst")
    await seed_users(other_api, "owner", "ann")
    assert await cids(other_api, filter_conditions={}) == []
    assert await cids(other_api, filter_conditions={"members": {"$in": ["ann"]}}) == []
    status, body = await other_api.post("/channels/messaging/private/message", {"message": {"text": "x", "user_id": "ann"}})
    assert_error(status, body, 404, 16)
    status, body = await other_api.post("/channels/messaging/private/read", {"user_id": "ann"})
    assert_error(status, body, 404, 16)
    status, body = await other_api.post("/channels/delete", {"cids": ["messaging:private"], "hard_delete": True})
    assert body["result"]["messaging:private"]["status"] == "not_found"
    # B's get-or-create of the same cid is B's own channel, without A's data or messages.
    body = await create(other_api, "private")
    assert body["created"] is True and "secret" not in body["channel"] and body["messages"] == []
    assert await cids(api, filter_conditions={"secret": 1}) == ["messaging:private"]


def test_message_ids_of_a_batch_are_time_ordered_uuid7() -> None:
    import uuid

    from broadcaster import ids

    a = ids.message_id_prefix(now_ms=1_700_000_000_000)
    b = ids.message_id_prefix(now_ms=1_700_000_000_001)
    first, last = ids.message_id(a, 0), ids.message_id(a, ids.SEQ_MAX - 1)
    assert uuid.UUID(first).version == 7 and uuid.UUID(last).variant == uuid.RFC_4122
    assert first < last < ids.message_id(b, 0)  # later batches sort after earlier ones
    assert uuid.UUID(first).int >> 80 == 1_700_000_000_000
    with pytest.raises(ValueError):
        ids.message_id(a, ids.SEQ_MAX)

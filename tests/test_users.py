"""Users over HTTP: upsert (all-or-nothing), partial update, query, delete, app isolation."""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson

from tests.helpers import Api, assert_error


async def query(api: Api, **payload: Any) -> tuple[int, dict[str, Any]]:
    return await api.get("/users", params={"payload": orjson.dumps(payload).decode()})


async def ids(api: Api, **payload: Any) -> list[str]:
    status, body = await query(api, **payload)
    assert status == 200, body
    return [u["id"] for u in body["users"]]


async def test_upsert_returns_users_and_replaces_on_second_call(api: Api, pool: asyncpg.Pool) -> None:
    status, body = await api.post("/users", {"users": {
        "ann": {"id": "ann", "name": "Ann", "role": "admin", "teams": ["a"], "language": "nl",
                "address": {"country": "NL"}, "age": 31},
        "ben": {"name": "Ben"},
    }})
    assert status == 200, body
    ann = body["users"]["ann"]
    assert ann["name"] == "Ann" and ann["role"] == "admin" and ann["teams"] == ["a"] and ann["language"] == "nl"
    assert ann["address"] == {"country": "NL"} and ann["age"] == 31
    assert ann["created_at"].endswith("Z") and "deleted_at" not in ann
    assert body["users"]["ben"]["role"] == "user" and body["users"]["ben"]["teams"] == []
    assert body["duration"].endswith("ms")

    # Upsert replaces the object; the role is kept when not given.
    status, body = await api.post("/users", {"users": {"ann": {"id": "ann", "color": "red"}}})
    assert status == 200, body
    ann2 = body["users"]["ann"]
    assert ann2["role"] == "admin" and ann2["color"] == "red"
    assert "name" not in ann2 and "age" not in ann2 and ann2["created_at"] == ann["created_at"]
    assert await pool.fetchval("SELECT custom FROM users WHERE id = 'ann'") == {"color": "red"}


async def test_one_invalid_user_rejects_the_whole_call(api: Api, pool: asyncpg.Pool) -> None:
    users = {f"u{i}": {"id": f"u{i}", "name": f"User {i}"} for i in range(2000)}
    users["u1500"]["teams"] = "not-a-list"
    status, body = await api.post("/users", {"users": users})
    assert_error(status, body, 400, 4, "users.u1500.teams")
    assert await pool.fetchval("SELECT count(*) FROM users") == 0

    for bad, word in (({"x": {"id": "y"}}, "users.x.id"), ({"a b": {}}, "users.a b.id"),
                      ({"x": {"name": 5}}, "users.x.name"), ({"x": []}, "users.x"), ({}, "users")):
        status, body = await api.post("/users", {"users": bad})
        assert_error(status, body, 400, 4, word)
    status, body = await api.post("/users", {"users": {f"u{i}": {} for i in range(10_001)}})
    assert_error(status, body, 400, 4, "10000")


async def test_upsert_ten_thousand_in_one_call(api: Api, pool: asyncpg.Pool) -> None:
    users = {f"user-{i:05d}": {"id": f"user-{i:05d}", "n": i} for i in range(10_000)}
    status, body = await api.post("/users", {"users": users})
    assert status == 200
    assert len(body["users"]) == 10_000
    assert await pool.fetchval("SELECT count(*) FROM users") == 10_000
    assert await ids(api, filter_conditions={"n": {"$gte": 9998}}) == ["user-09998", "user-09999"]


async def test_partial_update(api: Api) -> None:
    await api.post("/users", {"users": {"p": {"id": "p", "name": "P", "language": "en", "a": 1, "b": 2}}})
    status, body = await api.patch("/users", {"users": [
        {"id": "p", "set": {"name": "Pete", "c": {"x": 1}, "teams": ["t"]}, "unset": ["b", "language"]},
    ]})
    assert status == 200, body
    p = body["users"]["p"]
    assert p["name"] == "Pete" and p["a"] == 1 and p["c"] == {"x": 1} and p["teams"] == ["t"]
    assert "b" not in p and "language" not in p

    status, body = await api.patch("/users", {"users": [{"id": "p", "set": {"a": 2}}, {"id": "ghost", "set": {"a": 1}}]})
    assert_error(status, body, 404, 16, "ghost")
    assert (await query(api, filter_conditions={"id": "p"}))[1]["users"][0]["a"] == 1  # nothing written
    status, body = await api.patch("/users", {"users": [{"id": "p", "set": {"created_at": "x"}}]})
    assert_error(status, body, 400, 4, "users[0].set.created_at")
    status, body = await api.patch("/users", {"users": [{"id": "p"}]})
    assert_error(status, body, 400, 4, "users[0]")


async def test_query_filter_sort_limit_offset(api: Api) -> None:
    await api.post("/users", {"users": {
        "a": {"id": "a", "name": "Zed", "age": 20, "address": {"country": "NL"}, "teams": ["x"]},
        "b": {"id": "b", "name": "Yan", "age": 30, "address": {"country": "DE"}},
        "c": {"id": "c", "name": "Xia", "age": 40, "address": {"country": "NL"}, "teams": ["x", "y"]},
    }})
    assert await ids(api, filter_conditions={}) == ["a", "b", "c"]
    assert await ids(api, filter_conditions={"address.country": "NL"}, sort=[{"field": "name", "direction": 1}]) == ["c", "a"]
    assert await ids(api, filter_conditions={"age": {"$gt": 25}}, sort=[{"field": "id", "direction": -1}]) == ["c", "b"]
    assert await ids(api, filter_conditions={"teams": {"$contains": "x"}}, limit=1, offset=1) == ["c"]
    assert await ids(api, filter_conditions={"name": {"$autocomplete": "ya"}}) == ["b"]
    assert await ids(api, filter_conditions={"$or": [{"id": "a"}, {"age": 40}]}) == ["a", "c"]

    status, body = await query(api, filter_conditions={"age": {"$near": 1}})
    assert_error(status, body, 400, 4, "filter_conditions.age.$near")
    status, body = await query(api, filter_conditions={}, limit=1001)
    assert_error(status, body, 400, 4, "limit")
    status, body = await query(api, filter_conditions={}, sort=[{"field": "age", "direction": 1}])
    assert_error(status, body, 400, 4, "sort[0].field")
    status, body = await api.get("/users", params={"payload": "{nope"})
    assert_error(status, body, 400, 4, "payload")


async def test_soft_and_hard_delete(api: Api, pool: asyncpg.Pool) -> None:
    await api.post("/users", {"users": {k: {"id": k} for k in ("s", "h", "m1", "m2", "m3")}})
    status, body = await api.delete("/users/s")
    assert status == 200 and body["user"]["deleted_at"].endswith("Z")
    assert "s" not in await ids(api, filter_conditions={})
    assert "s" in await ids(api, filter_conditions={}, include_deleted=True)
    status, body = await api.delete("/users/h", params={"hard_delete": "true"})
    assert status == 200 and body["user"]["id"] == "h"
    assert await pool.fetchval("SELECT count(*) FROM users WHERE id = 'h'") == 0
    status, body = await api.delete("/users/h")
    assert_error(status, body, 404, 16, "h")

    status, body = await api.post("/users/delete", {"user_ids": ["m1", "m2"], "user": "hard"})
    assert status == 200 and body["task_id"]
    status, body = await api.post("/users/delete", {"user_ids": ["m3"], "user": "soft"})
    assert status == 200
    assert await pool.fetchval("SELECT count(*) FROM users") == 2  # s and m3, soft-deleted
    assert await ids(api, filter_conditions={}) == []
    status, body = await api.post("/users/delete", {"user_ids": ["m3"], "user": "gone"})
    assert_error(status, body, 400, 4, "user")
    status, body = await api.post("/users/delete", {"user_ids": []})
    assert_error(status, body, 400, 4, "user_ids")

    # Upserting a soft-deleted user brings it back.
    await api.post("/users", {"users": {"s": {"id": "s"}}})
    assert await ids(api, filter_conditions={}) == ["s"]


async def test_users_are_invisible_to_another_app(api: Api, other_api: Api) -> None:
    await api.post("/users", {"users": {"mine": {"id": "mine", "secret": 1}}})
    assert await ids(other_api, filter_conditions={}) == []
    assert await ids(other_api, filter_conditions={"secret": 1}) == []
    status, body = await other_api.delete("/users/mine")
    assert_error(status, body, 404, 16)
    status, body = await other_api.patch("/users", {"users": [{"id": "mine", "set": {"secret": 2}}]})
    assert_error(status, body, 404, 16)
    # The same id in app B is a different user.
    await other_api.post("/users", {"users": {"mine": {"id": "mine", "secret": 9}}})
    status, body = await query(api, filter_conditions={"id": "mine"})
    assert body["users"][0]["secret"] == 1

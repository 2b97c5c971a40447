"""The filter language: compiled SQL run against real rows, and its 400s."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from broadcaster import filters
from broadcaster.errors import ApiError
from broadcaster.filters import CHANNEL_SCHEMA, USER_SCHEMA, Params, compile_filter, compile_sort

USERS: list[tuple[str, str | None, str, list[str], dict[str, Any], str]] = [
    # id, name, role, teams, custom, created_at
    ("alice", "Alice Smith", "admin", ["red", "blue"],
     {"age": 30, "vip": True, "address": {"country": "NL", "city": "Utrecht"}, "tags": ["a", "b"],
      "joined": "2026-01-10T10:00:00Z", "nick": "ally"}, "2026-01-01T00:00:00Z"),
    ("bob", "Bob Jones", "user", ["red"],
     {"age": 25, "vip": False, "address": {"country": "DE"}, "tags": ["b"],
      "joined": "2026-02-10T10:00:00+02:00", "nick": "bobby"}, "2026-02-01T00:00:00Z"),
    ("carol", "carol o'brien", "user", [],
     {"age": "unknown", "address": {"country": "NL"}, "joined": "not a date", "nick": 5},
     "2026-03-01T00:00:00Z"),
    ("dave", None, "guest", ["green"], {"age": 41.5}, "2026-04-01T00:00:00Z"),
]


@pytest.fixture
async def users_pool(pool: asyncpg.Pool) -> asyncpg.Pool:
    app_id = await pool.fetchval("INSERT INTO apps (name, api_key, api_secret) VALUES ('f', 'fk', 'fs') RETURNING id")
    for uid, name, role, teams, custom, created in USERS:
        await pool.execute(
            "INSERT INTO users (app_id, id, name, role, teams, custom, created_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7::text::timestamptz)",
            app_id, uid, name, role, teams, custom, created,
        )
    return pool


async def match(pool: asyncpg.Pool, flt: Any, schema: filters.Schema = USER_SCHEMA) -> set[str]:
    params = Params(start=["x"])
    where = compile_filter(flt, schema, params)
    rows = await pool.fetch(f"SELECT id FROM users WHERE $1::text IS NOT NULL AND {where}", *params.values)
    return {r["id"] for r in rows}


CASES: list[tuple[Any, set[str]]] = [
    ({}, {"alice", "bob", "carol", "dave"}),
    (None, {"alice", "bob", "carol", "dave"}),
    ({"id": "alice"}, {"alice"}),
    ({"id": {"$eq": "bob"}}, {"bob"}),
    ({"role": {"$ne": "user"}}, {"alice", "dave"}),
    ({"name": {"$ne": "Bob Jones"}}, {"alice", "carol", "dave"}),
    ({"name": None}, {"dave"}),
    ({"id": {"$gt": "bob"}}, {"carol", "dave"}),
    ({"id": {"$gte": "bob"}}, {"bob", "carol", "dave"}),
    ({"id": {"$lt": "bob"}}, {"alice"}),
    ({"id": {"$lte": "bob"}}, {"alice", "bob"}),
    ({"created_at": {"$gte": "2026-02-01T00:00:00Z", "$lt": "2026-04-01T00:00:00+00:00"}}, {"bob", "carol"}),
    ({"created_at": {"$gt": "2026-03-01T01:00:00+02:00"}}, {"carol", "dave"}),
    ({"id": {"$in": ["alice", "dave", "zed"]}}, {"alice", "dave"}),
    ({"id": {"$nin": ["alice", "dave"]}}, {"bob", "carol"}),
    ({"name": {"$exists": False}}, {"dave"}),
    ({"name": {"$exists": True}}, {"alice", "bob", "carol"}),
    ({"teams": {"$contains": "red"}}, {"alice", "bob"}),
    ({"teams": "blue"}, {"alice"}),
    ({"teams": {"$in": ["green", "blue"]}}, {"alice", "dave"}),
    ({"teams": {"$nin": ["red"]}}, {"carol", "dave"}),
    ({"teams": {"$exists": False}}, {"carol"}),
    ({"name": {"$autocomplete": "ali"}}, {"alice"}),
    ({"name": {"$autocomplete": "JON"}}, {"bob"}),
    ({"name": {"$autocomplete": "brie"}}, {"carol"}),
    ({"name": {"$autocomplete": "o'b"}}, {"carol"}),
    ({"name": {"$autocomplete": "%"}}, set()),
    # custom fields, top level and dot paths
    ({"vip": True}, {"alice"}),
    ({"vip": {"$ne": True}}, {"bob", "carol", "dave"}),
    ({"address.country": "NL"}, {"alice", "carol"}),
    ({"address": {"country": "DE"}}, {"bob"}),
    ({"address.country": {"$in": ["DE", "FR"]}}, {"bob"}),
    ({"address.country": {"$nin": ["DE"]}}, {"alice", "carol", "dave"}),
    ({"address.city": {"$exists": True}}, {"alice"}),
    ({"address.city": {"$exists": False}}, {"bob", "carol", "dave"}),
    ({"age": {"$gt": 26}}, {"alice", "dave"}),
    ({"age": {"$lte": 30}}, {"alice", "bob"}),
    ({"age": {"$gte": 9}}, {"alice", "bob", "dave"}),  # numeric, not text order
    ({"age": {"$gt": "a"}}, {"carol"}),  # strings compare with strings only
    ({"age": 30}, {"alice"}),
    ({"vip": {"$gt": False}}, {"alice"}),
    ({"joined": {"$gt": "2026-02-10T07:00:00Z"}}, {"bob"}),  # 08:00Z as timestamptz
    ({"joined": {"$lt": "2026-02-01T00:00:00Z"}}, {"alice"}),
    ({"tags": {"$contains": "b"}}, {"alice", "bob"}),
    ({"tags": {"$contains": "a"}}, {"alice"}),
    ({"nick": {"$autocomplete": "BOB"}}, {"bob"}),
    # combinators
    ({"$or": [{"id": "alice"}, {"age": {"$gt": 40}}]}, {"alice", "dave"}),
    ({"$and": [{"role": "user"}, {"address.country": "NL"}]}, {"carol"}),
    ({"$nor": [{"role": "user"}, {"name": {"$autocomplete": "ali"}}]}, {"dave"}),
    ({"$nor": [{"name": {"$gt": "B"}}]}, {"alice", "dave"}),  # NULL name counts as not matching
    ({"role": "user", "$or": [{"vip": False}, {"nick": 5}]}, {"bob", "carol"}),
    ({"$and": [{"$or": [{"$and": [{"$or": [{"$and": [{"$or": [{"$and": [{"id": "bob"}]}]}]}]}]}]}]}, {"bob"}),
]


async def test_every_operator_and_combinator_against_rows(users_pool: asyncpg.Pool) -> None:
    for flt, want in CASES:
        assert await match(users_pool, flt) == want, flt


async def test_channel_members_filter(pool: asyncpg.Pool) -> None:
    app_id = await pool.fetchval("INSERT INTO apps (name, api_key, api_secret) VALUES ('f', 'fk', 'fs') RETURNING id")
    for cid, members in (("m:1", ["a", "b"]), ("m:2", ["b", "c"]), ("m:3", [])):
        await pool.execute(
            "INSERT INTO channels (app_id, cid, type, id, member_count) VALUES ($1, $2, 'm', $3, $4)",
            app_id, cid, cid[2:], len(members),
        )
        for u in members:
            await pool.execute("INSERT INTO members (app_id, cid, user_id) VALUES ($1, $2, $3)", app_id, cid, u)

    async def chans(flt: Any) -> set[str]:
        params = Params(start=[app_id])
        where = compile_filter(flt, CHANNEL_SCHEMA, params)
        rows = await pool.fetch(f"SELECT cid FROM channels WHERE app_id = $1 AND {where}", *params.values)
        return {r["cid"] for r in rows}

    assert await chans({"members": {"$in": ["a"]}}) == {"m:1"}
    assert await chans({"members": {"$in": ["a", "c"]}}) == {"m:1", "m:2"}
    assert await chans({"members": {"$contains": "b"}}) == {"m:1", "m:2"}
    assert await chans({"members": ["b", "c"]}) == {"m:2"}
    assert await chans({"members": {"$nin": ["a"]}}) == {"m:2", "m:3"}
    assert await chans({"member_count": {"$gte": 1}, "type": "m"}) == {"m:1", "m:2"}
    assert await chans({"cid": {"$in": ["m:3"]}}) == {"m:3"}


def test_values_are_parameters_never_sql_text() -> None:
    evil = "x'); DROP TABLE users; --"
    p = Params()
    sql = compile_filter({evil: {"$gt": evil}, "name": evil, "a.b": {"$autocomplete": evil}}, USER_SCHEMA, p)
    assert "DROP" not in sql
    assert evil in p.values and ["a", "b"] in p.values


def test_custom_equality_uses_containment() -> None:
    p = Params(start=[1, 2])
    sql = compile_filter({"address.country": "NL"}, USER_SCHEMA, p)
    assert sql == "(custom @> $3::jsonb)"
    assert p.values[2] == {"address": {"country": "NL"}}


@pytest.mark.parametrize(("flt", "words"), [
    ({"id": {"$regex": "a"}}, ["filter.id.$regex", "unknown operator"]),
    ({"$xor": []}, ["filter.$xor", "unknown operator"]),
    ({"$or": {}}, ["filter.$or", "list"]),
    ({"$and": [{"id": {"$foo": 1}}]}, ["filter.$and[0].id.$foo"]),
    ({"id": {"$in": "alice"}}, ["filter.id.$in", "list"]),
    ({"id": 5}, ["filter.id.$eq", "string"]),
    ({"created_at": {"$gt": "yesterday"}}, ["filter.created_at.$gt", "RFC 3339"]),
    ({"created_at": {"$gt": 5}}, ["filter.created_at.$gt"]),
    ({"name": {"$exists": "yes"}}, ["filter.name.$exists", "boolean"]),
    ({"name": {"$contains": "x"}}, ["filter.name.$contains", "list fields"]),
    ({"teams": {"$gt": "x"}}, ["filter.teams.$gt"]),
    ({"name": {"$autocomplete": 3}}, ["filter.name.$autocomplete", "string"]),
    ({"age": {"$gt": [1]}}, ["filter.age.$gt"]),
    ({"age": {"$gt": 1, "x": 2}}, ["filter.age", "mix"]),
    ([], ["filter", "object"]),
    ({"$and": [{"$and": [{"$and": [{"$and": [{"$and": [{"$and": [{"$and": [{"$and": [{"id": "a"}]}]}]}]}]}]}]}]},
     ["deeper than 8", "filter.$and[0].$and[0]"]),
])
def test_errors_name_the_path(flt: Any, words: list[str]) -> None:
    with pytest.raises(ApiError) as e:
        compile_filter(flt, USER_SCHEMA, Params())
    assert e.value.status == 400 and e.value.code == 4
    for w in words:
        assert w in e.value.message, (w, e.value.message)


def test_unknown_field_without_custom() -> None:
    schema = filters.Schema(columns={"id": filters.Column("id", "text")})
    with pytest.raises(ApiError) as e:
        compile_filter({"nope": 1}, schema, Params(), field="filter_conditions")
    assert "filter_conditions.nope" in e.value.message and "unknown field" in e.value.message


def test_sort() -> None:
    assert compile_sort(None, USER_SCHEMA, default=[("created_at", 1)]) == [("created_at", 1)]
    got = compile_sort([{"field": "name", "direction": -1}, {"field": "id"}], USER_SCHEMA, default=[])
    assert got == [("name", -1), ("id", 1)]
    assert compile_sort({"created_at": -1}, USER_SCHEMA, default=[]) == [("created_at", -1)]
    for bad, word in (([{"field": "nope"}], "sort[0].field"), ([{"field": "id", "direction": 2}], "sort[0].direction"),
                      ("id", "sort"), ([{"field": "members"}], "sort[0]")):
        with pytest.raises(ApiError) as e:
            compile_sort(bad, CHANNEL_SCHEMA if word == "sort[0]" else USER_SCHEMA, default=[])
        assert word in e.value.message

"""channels_custom holds only channels with custom fields (migration 0260): a campaign's 1:1
channels, which have none, pay no GIN insert. Filters on custom fields still find the same
channels, through that index, and the ones with no custom fields where a negation asks."""

from __future__ import annotations

from typing import Any

import asyncpg

from broadcaster.filters import CHANNEL_SCHEMA, Params, compile_filter
from tests.helpers import Api
from tests.test_channels import seed_users

PLAIN = 3000  # channels with custom = '{}', as a campaign creates them
CUSTOM: dict[str, dict[str, Any]] = {
    "room:red1": {"color": "red", "tags": ["a", "b"], "spec": {"floor": 1}},
    "room:red2": {"color": "red", "tags": ["b"]},
    "room:blue": {"color": "blue", "tags": ["a"], "spec": {"floor": 2}},
    "room:none": {"size": 4},
}

CASES: list[tuple[dict[str, Any], set[str]]] = [
    ({"color": "red"}, {"room:red1", "room:red2"}),
    ({"color": {"$eq": "blue"}}, {"room:blue"}),
    ({"color": {"$in": ["blue", "green"]}}, {"room:blue"}),
    ({"tags": {"$contains": "a"}}, {"room:red1", "room:blue"}),
    ({"spec.floor": 2}, {"room:blue"}),
    ({"color": "red", "tags": {"$contains": "a"}}, {"room:red1"}),
    ({"$or": [{"color": "blue"}, {"size": 4}]}, {"room:blue", "room:none"}),
]
# negations: every channel but the matching ones, those without custom fields included
NEGATIONS: list[tuple[dict[str, Any], set[str]]] = [
    ({"color": {"$ne": "red"}}, {"room:red1", "room:red2"}),
    ({"color": {"$nin": ["red", "blue"]}}, {"room:red1", "room:red2", "room:blue"}),
]


async def _seed(pool: asyncpg.Pool) -> int:
    app_id: int = await pool.fetchval(
        "INSERT INTO apps (name, api_key, api_secret) VALUES ('c', 'ck', 'cs') RETURNING id")
    await pool.execute(
        "INSERT INTO channels (app_id, cid, type, id) SELECT $1, 'messaging:' || g, 'messaging', g::text"
        " FROM generate_series(1, $2) g", app_id, PLAIN)
    for cid, custom in CUSTOM.items():
        await pool.execute("INSERT INTO channels (app_id, cid, type, id, custom) VALUES ($1, $2, 'room', $3, $4)",
                           app_id, cid, cid.split(":")[1], custom)
    await pool.execute("ANALYZE channels")
    return app_id


async def test_the_index_leaves_out_channels_without_custom_fields(pool: asyncpg.Pool) -> None:
    await _seed(pool)
    pred = await pool.fetchval(
        "SELECT pg_get_expr(indpred, indrelid) FROM pg_index WHERE indexrelid = 'channels_custom'::regclass")
    assert pred is not None and "'{}'::jsonb" in pred, pred


async def test_custom_filters_find_the_same_channels_through_the_index(pool: asyncpg.Pool) -> None:
    app_id = await _seed(pool)
    every = {f"messaging:{i}" for i in range(1, PLAIN + 1)} | set(CUSTOM)

    async def run(flt: dict[str, Any], explain: bool = False) -> Any:
        params = Params(start=[app_id])
        where = compile_filter(flt, CHANNEL_SCHEMA, params)
        sql = f"SELECT cid FROM channels WHERE app_id = $1 AND {where}"
        if explain:
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute("SET LOCAL enable_seqscan = off")
                return "\n".join(r[0] for r in await conn.fetch("EXPLAIN " + sql, *params.values))
        return {r["cid"] for r in await pool.fetch(sql, *params.values)}

    for flt, want in CASES:
        assert await run(flt) == want, flt
    for flt, excluded in NEGATIONS:
        assert await run(flt) == every - excluded, flt
    # a containment test is one the partial index can answer: the planner takes it, where
    # without the guard beside @> it could not use a partial index at all
    for flt, _ in CASES[:5]:
        plan = await run(flt, explain=True)
        assert "channels_custom" in plan, (flt, plan)


async def test_query_channels_filters_on_custom_fields(api: Api) -> None:
    await seed_users(api, "boss")
    for cid, custom in CUSTOM.items():
        kind, cid_id = cid.split(":")
        st, body = await api.post(f"/channels/{kind}/{cid_id}/query",
                                  {"data": {**custom, "created_by_id": "boss"}})
        assert st == 200, body
    st, body = await api.post("/channels/messaging/plain/query", {"data": {"created_by_id": "boss"}})
    assert st == 200, body
    st, body = await api.post("/channels", {"filter_conditions": {"color": "red"}, "sort": [{"field": "cid", "direction": 1}]})
    assert st == 200, body
    assert [c["channel"]["cid"] for c in body["channels"]] == ["room:red1", "room:red2"]
    st, body = await api.post("/channels", {"filter_conditions": {"color": {"$ne": "red"}},
                                            "sort": [{"field": "cid", "direction": 1}]})
    assert st == 200, body
    assert [c["channel"]["cid"] for c in body["channels"]] == ["messaging:plain", "room:blue", "room:none"]

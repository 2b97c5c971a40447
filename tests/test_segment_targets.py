"""Explicit target lists: addtargets/deletetargets, existence, keyset pages, bad input, plans."""

from __future__ import annotations

import datetime as dt

import asyncpg

from tests.helpers import Api, assert_error


async def _explicit(api: Api, seg_id: str = "s1", type_: str = "user") -> dict:
    st, body = await api.post("/segments", {"type": type_, "id": seg_id, "name": "list"})
    assert st == 201, body
    assert body["segment"]["size"] == 0
    return body["segment"]


async def _count(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM segment_targets"))


async def test_add_delete_exists_and_exact_size(api: Api, other_api: Api):
    await _explicit(api)
    st, body = await api.post("/segments/s1/addtargets", {"target_ids": ["b", "a", "c", "a"]})
    assert st == 200, body
    assert body["added"] == 3 and body["size"] == 3
    st, body = await api.post("/segments/s1/addtargets", {"target_ids": ["c", "d"]})
    assert body["added"] == 1 and body["size"] == 4
    st, body = await api.get("/segments/s1/target/a")
    assert st == 200 and body["target"]["target_id"] == "a", body
    assert body["target"]["created_at"].endswith("Z")
    st, body = await api.get("/segments/s1/target/zz")
    assert_error(st, body, 404, 16, "zz")
    st, body = await api.post("/segments/s1/deletetargets", {"target_ids": ["a", "nope"]})
    assert st == 200 and body["deleted"] == 1, body
    st, body = await api.get("/segments/s1")
    assert body["segment"]["size"] == 3
    st, body = await api.get("/segments/s1/target/a")
    assert st == 404
    # another app sees nothing of it
    st, body = await other_api.get("/segments/s1/target/b")
    assert_error(st, body, 404, 16, "s1")
    st, body = await other_api.post("/segments/s1/addtargets", {"target_ids": ["x"]})
    assert_error(st, body, 404, 16)


async def test_channel_segment_takes_cids_only(api: Api):
    await _explicit(api, "ch", "channel")
    st, body = await api.post("/segments/ch/addtargets", {"target_ids": ["messaging:a", "team:b-1"]})
    assert st == 200 and body["added"] == 2, body
    st, body = await api.post("/segments/ch/addtargets", {"target_ids": ["messaging:c", "no-colon"]})
    assert_error(st, body, 400, 4, "target_ids[1]")
    st, body = await api.get("/segments/ch/target/messaging:a")
    assert st == 200, body


async def test_bad_target_input_is_400_and_writes_nothing(api: Api, pool: asyncpg.Pool):
    await _explicit(api)
    cases = [
        ({"target_ids": [f"u{i}" for i in range(10_001)]}, "target_ids"),
        ({"target_ids": []}, "target_ids"),
        ({"target_ids": ["ok", 5]}, "target_ids[1]"),
        ({"target_ids": ["ok", "bad id with spaces"]}, "target_ids[1]"),
        ({"target_ids": "u1"}, "target_ids"),
        ({}, "target_ids"),
    ]
    for payload, words in cases:
        st, body = await api.post("/segments/s1/addtargets", payload)
        assert_error(st, body, 400, 4, words)
    assert await _count(pool) == 0
    st, body = await api.get("/segments/s1")
    assert body["segment"]["size"] == 0


async def test_targets_on_non_explicit_segment_is_400(api: Api, pool: asyncpg.Pool):
    st, body = await api.post("/segments", {"type": "user", "id": "all", "all_users": True})
    assert st == 201, body
    for op in ("addtargets", "deletetargets"):
        st, body = await api.post(f"/segments/all/{op}", {"target_ids": ["u1"]})
        assert_error(st, body, 400, 4, "all_users")
    assert await _count(pool) == 0


async def _walk(api: Api, path: str, payload: dict, key: str = "next") -> list[str]:
    seen: list[str] = []
    body = dict(payload)
    while True:
        st, resp = await api.post(path, body)
        assert st == 200, resp
        seen += [t["target_id"] for t in resp["targets"]]
        if key not in resp:
            return seen
        body = {**payload, key: resp[key]}


async def test_pages_next_prev_desc_and_created_at(api: Api):
    await _explicit(api)
    ids = [f"user-{i:04d}" for i in range(250)]
    await api.post("/segments/s1/addtargets", {"target_ids": ids[:100]})
    await api.post("/segments/s1/addtargets", {"target_ids": ids[100:]})
    path = "/segments/s1/targets/query"
    assert await _walk(api, path, {"limit": 40}) == ids
    # a descending walk bounded by $lte
    desc = await _walk(api, path, {"limit": 30, "sort": [{"field": "target_id", "direction": -1}],
                                   "filter": {"target_id": {"$lte": "user-0099"}}})
    assert desc == list(reversed(ids[:100]))
    # walk forward two pages, then back with prev
    st, p1 = await api.post(path, {"limit": 50})
    st, p2 = await api.post(path, {"limit": 50, "next": p1["next"]})
    assert "prev" not in p1 and "prev" in p2
    st, back = await api.post(path, {"limit": 50, "prev": p2["prev"]})
    assert st == 200, back
    assert [t["target_id"] for t in back["targets"]] == ids[:50]
    assert "prev" not in back and "next" in back
    # created_at order: the first call's ids come before the second's
    by_time = await _walk(api, path, {"limit": 60, "sort": [{"field": "created_at", "direction": 1}]})
    assert set(by_time[:100]) == set(ids[:100]) and len(by_time) == 250
    st, resp = await api.post(path, {"filter": {"target_id": {"$in": ["user-0003", "zz"]}}})
    assert [t["target_id"] for t in resp["targets"]] == ["user-0003"]


async def test_bad_query_input_is_400(api: Api, other_api: Api):
    await _explicit(api)
    await _explicit(api, "s2")
    await api.post("/segments/s1/addtargets", {"target_ids": ["a", "b", "c"]})
    path = "/segments/s1/targets/query"
    st, p1 = await api.post(path, {"limit": 1})
    cursor = p1["next"]
    cases = [
        ({"limit": -1}, "limit"),
        ({"limit": 10_001}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"filter": {"name": "x"}}, "filter.name"),
        ({"filter": {"target_id": {"$regex": "a"}}}, "filter.target_id.$regex"),
        ({"filter": {"target_id": {"$gt": 5}}}, "filter.target_id.$gt"),
        ({"sort": [{"field": "size", "direction": 1}]}, "sort"),
        ({"limit": 1, "next": cursor[:-3] + "AAA"}, "next"),
        ({"limit": 1, "next": "garbage!"}, "next"),
        ({"limit": 1, "prev": cursor}, "prev"),
        ({"limit": 1, "next": cursor, "prev": cursor}, "mutually exclusive"),
    ]
    for payload, words in cases:
        st, body = await api.post(path, payload)
        assert_error(st, body, 400, 4, words)
    # limit 0 is the default page (the hosted API's 0..10000)
    st, body = await api.post(path, {"limit": 0})
    assert st == 200 and [t["target_id"] for t in body["targets"]] == ["a", "b", "c"], body
    # the same cursor on another segment, or from another app
    st, body = await api.post("/segments/s2/targets/query", {"limit": 1, "next": cursor})
    assert_error(st, body, 400, 4, "another resource")
    await _explicit(other_api)
    st, body = await other_api.post(path, {"limit": 1, "next": cursor})
    assert_error(st, body, 400, 4, "next")


async def test_a_cursor_continues_its_own_query(api: Api):
    """SPEC 1: the filter and sort travel in the cursor; another filter or sort sent with it is
    ignored, only limit changes (the hosted API's SDK test_segment_targets pages like this)."""
    await _explicit(api)
    ids = [f"t{i:02d}" for i in range(10)]
    await api.post("/segments/s1/addtargets", {"target_ids": ids})
    path = "/segments/s1/targets/query"
    st, p1 = await api.post(path, {"limit": 3})
    assert [t["target_id"] for t in p1["targets"]] == ids[:3]
    st, p2 = await api.post(path, {"limit": 3, "next": p1["next"],
                                   "filter": {"target_id": {"$lte": "t01"}},
                                   "sort": [{"field": "target_id", "direction": -1}]})
    assert st == 200, p2
    assert [t["target_id"] for t in p2["targets"]] == ids[3:6] and "next" in p2 and "prev" in p2
    st, p3 = await api.post(path, {"limit": 10, "next": p2["next"]})
    assert [t["target_id"] for t in p3["targets"]] == ids[6:] and "next" not in p3
    st, back = await api.post(path, {"limit": 2, "prev": p3["prev"], "sort": [{"field": "created_at"}]})
    assert [t["target_id"] for t in back["targets"]] == ids[4:6]
    # a filtered descending query keeps its filter and order across pages
    st, d1 = await api.post(path, {"limit": 2, "filter": {"target_id": {"$lte": "t04"}},
                                   "sort": [{"field": "target_id", "direction": -1}]})
    st, d2 = await api.post(path, {"limit": 5, "next": d1["next"]})
    assert [t["target_id"] for t in d1["targets"] + d2["targets"]] == ["t04", "t03", "t02", "t01", "t00"]
    assert "next" not in d2
    assert all(t["segment_id"] == "s1" for t in d2["targets"])


async def test_targets_page_is_an_index_range_scan(api: Api, pool: asyncpg.Pool):
    from broadcaster.store import targets

    seg = await _explicit(api)
    key = await pool.fetchval("SELECT key FROM segments WHERE id = $1", seg["id"])
    # a few segments with many rows, so the planner has a real choice
    await pool.execute(
        "INSERT INTO segment_targets (seg, target_id) SELECT s, 'u' || g FROM generate_series(1, 20000) g,"
        " unnest(ARRAY[$1::bigint, $1 + 1000, $1 + 2000]) s", key,
    )
    # no ANALYZE: right after an import the statistics know nothing of the segment
    for sort in (("target_id", 1), ("target_id", -1), ("created_at", 1), ("created_at", -1)):
        for position in (None, ["u5000"] if sort[0] == "target_id" else [dt.datetime(2026, 1, 1, tzinfo=dt.UTC), "u5"]):
            sql, args = targets.page_sql(key, [], [key], sort, position, False, 10_000)
            rows = await targets.fetch_index_ordered(pool, sql, args, explain=True)
            plan = "\n".join(r[0] for r in rows)
            assert "Index" in plan and "segment_targets" in plan, plan
            assert "Sort" not in plan and "Seq Scan" not in plan, plan
            assert "Index Cond" in plan and "seg =" in plan, plan
    async with pool.acquire() as conn, conn.transaction():
        await targets.fetch_index_ordered(conn, sql, args)
        assert await conn.fetchval("SHOW enable_sort") == "on"  # restored for the caller


async def test_nul_characters_are_400_not_500(api: Api):
    await _explicit(api)
    st, body = await api.post("/segments", {"type": "user", "name": "a\x00b"})
    assert_error(st, body, 400, 4, "name")
    st, body = await api.post("/segments", {"type": "user", "filter": {"tier": "x\x00"}})
    assert_error(st, body, 400, 4, "filter.tier")
    st, body = await api.post("/segments/s1/targets/query", {"filter": {"target_id": "a\x00"}})
    assert_error(st, body, 400, 4, "filter.target_id")
    st, body = await api.get("/segments/s%00/target/x")  # path ids are validated like body ids
    assert_error(st, body, 400, 4, "path parameter id")
    st, body = await api.get("/segments/s1/target/x%00y")
    assert_error(st, body, 400, 4, "path parameter target_id")


async def test_targets_filter_takes_the_whole_filter_language(api: Api):
    await _explicit(api)
    ids = [f"t{i:02d}" for i in range(20)]
    await api.post("/segments/s1/addtargets", {"target_ids": ids[:10]})
    st, first = await api.post("/segments/s1/targets/query", {"limit": 1, "sort": [{"field": "created_at"}]})
    await api.post("/segments/s1/addtargets", {"target_ids": ids[10:]})
    st, t10 = await api.get("/segments/s1/target/t10")
    second_call = t10["target"]["created_at"]
    path = "/segments/s1/targets/query"
    cases = [
        ({"target_id": {"$ne": "t00"}}, ids[1:]),
        ({"target_id": {"$nin": ids[:18]}}, ids[18:]),
        ({"$or": [{"target_id": "t03"}, {"target_id": {"$gte": "t18"}}]}, ["t03", "t18", "t19"]),
        ({"$nor": [{"target_id": {"$lt": "t02"}}, {"target_id": {"$gt": "t03"}}]}, ["t02", "t03"]),
        ({"$and": [{"target_id": {"$gt": "t04"}}, {"target_id": {"$lte": "t06"}}]}, ["t05", "t06"]),
        ({"target_id": {"$autocomplete": "T1"}}, ids[10:]),
        ({"target_id": {"$exists": True}}, ids),
        ({"target_id": {"$exists": False}}, []),
        ({"created_at": {"$gte": second_call}}, ids[10:]),
        ({"created_at": {"$lt": second_call}, "target_id": {"$gte": "t08"}}, ["t08", "t09"]),
        ({"created_at": {"$in": [first["targets"][0]["created_at"]]}}, ids[:10]),
        ({"created_at": {"$ne": second_call}, "target_id": {"$in": ["t01", "t11"]}}, ["t01"]),
    ]
    for flt, want in cases:
        st, body = await api.post(path, {"filter": flt, "limit": 100})
        assert st == 200, (flt, body)
        assert [t["target_id"] for t in body["targets"]] == want, flt
    # paging through an $or keeps the filter in the cursor
    st, p1 = await api.post(path, {"filter": {"$or": [{"target_id": {"$lt": "t03"}}, {"target_id": "t15"}]},
                                   "limit": 2, "sort": [{"field": "target_id", "direction": -1}]})
    st, p2 = await api.post(path, {"limit": 5, "next": p1["next"]})
    assert [t["target_id"] for t in p1["targets"] + p2["targets"]] == ["t15", "t02", "t01", "t00"]
    for flt, words in (({"target_id": {"$contains": "a"}}, "filter.target_id.$contains"),
                       ({"$or": "x"}, "filter.$or"), ({"created_at": {"$gt": "yesterday"}}, "filter.created_at.$gt"),
                       ({"target_id": {"$in": [1]}}, "filter.target_id.$in")):
        st, body = await api.post(path, {"filter": flt})
        assert_error(st, body, 400, 4, words)


async def test_range_filters_bound_the_index_scan(api: Api, pool: asyncpg.Pool):
    """Comparisons on the sort key are Index Cond bounds; other conditions filter the rows
    the same ordered range scan walks (still no sort, no sequential or bitmap scan)."""
    from broadcaster.store import targets

    seg = await _explicit(api)
    key = await pool.fetchval("SELECT key FROM segments WHERE id = $1", seg["id"])
    await pool.execute("INSERT INTO segment_targets (seg, target_id) SELECT $1, 'u' || g"
                       " FROM generate_series(1, 20000) g", key)
    when = dt.datetime(2026, 1, 1, tzinfo=dt.UTC).isoformat()
    for sort, flt, bound in (
        (("target_id", 1), {"target_id": {"$gte": "u3", "$lt": "u4"}}, "target_id >="),
        (("target_id", -1), {"$and": [{"target_id": {"$lte": "u9"}}]}, "target_id <="),
        (("created_at", 1), {"created_at": {"$gt": when}}, "created_at >"),
        (("target_id", 1), {"$or": [{"target_id": "u5"}, {"target_id": {"$gt": "u9"}}]}, None),
        (("created_at", -1), {"target_id": {"$ne": "u1"}}, None),
    ):
        params: list = [key]
        conds = targets.compile_filter(flt, params)
        sql, args = targets.page_sql(key, conds, params, sort, None, False, 1000)
        plan = "\n".join(r[0] for r in await targets.fetch_index_ordered(pool, sql, args, explain=True))
        assert "Index" in plan and "Sort" not in plan and "Seq Scan" not in plan and "Bitmap" not in plan, plan
        cond = next(line for line in plan.splitlines() if "Index Cond" in line)
        if bound:
            assert bound in cond, plan
        else:
            assert "Filter" in plan, plan

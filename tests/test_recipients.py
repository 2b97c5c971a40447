"""Audience resolution (contract 3): distinct keyset pages over one or several segments."""

from __future__ import annotations

import asyncpg
import pytest

from broadcaster.errors import ApiError
from broadcaster.store import recipients
from tests.helpers import Api


async def _walk(pool: asyncpg.Pool, aud: recipients.Audience, limit: int) -> list[str]:
    out: list[str] = []
    after = None
    while True:
        page = await recipients.page(pool, aud, after=after, limit=limit)
        assert len(page) <= limit
        if not page:
            return out
        out += page
        after = page[-1]


@pytest.fixture
async def data(api: Api, pool: asyncpg.Pool, creds) -> int:
    app = creds.app_id
    await pool.execute(
        "INSERT INTO users (app_id, id, custom) SELECT $1, 'u' || lpad(g::text, 3, '0'),"
        " jsonb_build_object('tier', CASE WHEN g % 3 = 0 THEN 'gold' ELSE 'free' END)"
        " FROM generate_series(1, 60) g", app,
    )
    await pool.execute("UPDATE users SET deleted_at = now() WHERE app_id = $1 AND id = 'u003'", app)
    await pool.execute(
        "INSERT INTO channels (app_id, cid, type, id, custom) SELECT $1, 'messaging:c' || g,"
        " 'messaging', 'c' || g, jsonb_build_object('topic', CASE WHEN g < 5 THEN 'news' ELSE 'x' END)"
        " FROM generate_series(1, 9) g", app,
    )
    await pool.execute(
        "INSERT INTO members (app_id, cid, user_id) VALUES ($1, 'messaging:c2', 'boss'),"
        " ($1, 'messaging:c7', 'boss'), ($1, 'messaging:c7', 'u001')", app,
    )
    for body in (
        {"type": "user", "id": "list1"}, {"type": "user", "id": "list2"},
        {"type": "user", "id": "gold", "filter": {"tier": "gold"}},
        {"type": "user", "id": "everyone", "all_users": True},
        {"type": "channel", "id": "cids"}, {"type": "channel", "id": "news", "filter": {"topic": "news"}},
        {"type": "channel", "id": "mine", "all_sender_channels": True},
    ):
        st, resp = await api.post("/segments", body)
        assert st == 201, resp
    await api.post("/segments/list1/addtargets", {"target_ids": ["u001", "u002", "ghost", "boss"]})
    await api.post("/segments/list2/addtargets", {"target_ids": ["u002", "u003", "u009", "zed"]})
    await api.post("/segments/cids/addtargets", {"target_ids": ["messaging:c1", "messaging:gone"]})
    return app


async def test_explicit_lists_dedup_sender_excluded(pool, data):
    aud = await recipients.load_audience(pool, data, ["list1", "list2", "list1"], "boss")
    assert aud.kind == "user" and aud.segment_ids == ("list1", "list2")
    want = ["ghost", "u001", "u002", "u003", "u009", "zed"]  # explicit ids even if no such user
    assert await _walk(pool, aud, 2) == want
    assert await _walk(pool, aud, 100) == want
    assert await recipients.range_ids(pool, aud, after="u001", upto="u009") == ["u002", "u003", "u009"]
    assert await recipients.range_ids(pool, aud, after=None, upto="u001") == ["ghost", "u001"]


async def test_filter_and_all_users_with_explicit(pool, data):
    gold = await recipients.load_audience(pool, data, ["gold"], None)
    ids = await _walk(pool, gold, 7)
    assert ids == [f"u{g:03d}" for g in range(6, 61, 3)]  # u003 is deleted
    both = await recipients.load_audience(pool, data, ["gold", "list2"], "u009")
    ids = await _walk(pool, both, 5)
    assert "u009" not in ids and "u003" in ids and "zed" in ids and ids == sorted(set(ids))
    everyone = await recipients.load_audience(pool, data, ["everyone"], "u001")
    assert len(await _walk(pool, everyone, 16)) == 58


async def test_channel_audiences(pool, data):
    aud = await recipients.load_audience(pool, data, ["cids", "news", "mine"], "boss")
    assert aud.kind == "channel"
    ids = await _walk(pool, aud, 2)
    assert ids == ["messaging:c1", "messaging:c2", "messaging:c3", "messaging:c4", "messaging:c7",
                   "messaging:gone"]
    no_sender = await recipients.load_audience(pool, data, ["mine"], None)
    assert await recipients.page(pool, no_sender, after=None, limit=10) == []


async def test_mixed_and_missing_segments(pool, data):
    with pytest.raises(ApiError) as e:
        await recipients.load_audience(pool, data, ["list1", "cids"], None)
    assert e.value.status == 400 and "list1" in e.value.message and "cids" in e.value.message
    with pytest.raises(ApiError) as e:
        await recipients.load_audience(pool, data, ["list1", "nope"], None)
    assert e.value.status == 404 and "nope" in e.value.message
    with pytest.raises(ApiError) as e:
        await recipients.load_audience(pool, data + 999, ["list1"], None)
    assert e.value.status == 404


async def test_multi_segment_page_merges_index_scans(pool, data, monkeypatch):
    """Several segments: ordered index range scans merged, never a sort of an audience."""
    from broadcaster.store import targets

    plans: list[str] = []
    real = targets.fetch_index_ordered

    async def spy(conn, sql, args, *, explain=False):
        plans.append("\n".join(r[0] for r in await real(conn, sql, args, explain=True)))
        return await real(conn, sql, args)

    monkeypatch.setattr(targets, "fetch_index_ordered", spy)
    aud = await recipients.load_audience(pool, data, ["list1", "list2", "gold"], "boss")
    assert await recipients.page(pool, aud, after="u001", limit=3) == ["u002", "u003", "u006"]
    plan = plans[-1]
    assert "Merge Append" in plan and "Sort  (" not in plan and "Seq Scan" not in plan, plan

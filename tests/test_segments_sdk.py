"""The official stream-chat SDK drives every segment method against a running server."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from stream_chat.base.exceptions import StreamAPIException
from stream_chat.types.segment import SegmentType

from tests.helpers import wait_for


def _walk(segment, limit: int, **kw) -> list[str]:
    seen: list[str] = []
    options: dict = {"limit": limit}
    while True:
        resp = segment.query_targets(options=options, **kw)
        seen += [t["target_id"] for t in resp["targets"]]
        if not resp.get("next"):
            return seen
        options = {"limit": limit, "next": resp["next"]}


def test_sdk_user_segment_lifecycle(sdk):
    segment = sdk.segment(SegmentType.USER, data={"name": "Imported", "description": "from CRM"})
    created = segment.create()
    assert created["segment"]["type"] == "user" and segment.segment_id
    assert segment.get()["segment"]["name"] == "Imported"
    ids = [f"user-{i:05d}" for i in range(25_000)]
    for chunk in (ids[:10_000], ids[10_000:20_000], ids[20_000:]):
        segment.add_targets(target_ids=chunk)
    assert segment.get()["segment"]["size"] == 25_000
    assert segment.target_exists("user-00042").status_code() == 200
    with pytest.raises(StreamAPIException) as e:
        segment.target_exists("user-99999")
    assert e.value.status_code == 404

    assert _walk(segment, 10_000) == ids
    desc = _walk(segment, 1_000, filter_conditions={"target_id": {"$lte": "user-02999"}},
                 sort=[{"field": "target_id", "direction": -1}])
    assert desc == list(reversed(ids[:3_000]))

    segment.remove_targets(target_ids=ids[:5] + ["not-there"])
    assert segment.get()["segment"]["size"] == 24_995
    with pytest.raises(StreamAPIException):
        segment.target_exists("user-00000")

    segment.update({"name": "Renamed"})
    found = sdk.query_segments(filter_conditions={"id": {"$eq": segment.segment_id}})
    assert [s["name"] for s in found["segments"]] == ["Renamed"]
    segment.delete()
    with pytest.raises(StreamAPIException) as e:
        segment.get()
    assert e.value.status_code == 404


def test_sdk_channel_segment_with_cids(sdk):
    segment = sdk.segment(SegmentType.CHANNEL, segment_id="chans")
    segment.create()
    segment.add_targets(target_ids=["messaging:a", "messaging:b", "livestream:c"])
    assert segment.target_exists("messaging:b").status_code() == 200
    resp = segment.query_targets(options={"limit": 2})
    assert [t["target_id"] for t in resp["targets"]] == ["livestream:c", "messaging:a"]
    with pytest.raises(StreamAPIException) as e:
        segment.add_targets(target_ids=["plain-user-id"])
    assert e.value.status_code == 400
    assert sdk.query_segments(filter_conditions={"type": "channel"})["segments"][0]["id"] == "chans"


def test_sdk_filter_segment_size_after_job(sdk, settings, sync_creds, start_worker):
    async def seed() -> None:
        conn = await asyncpg.connect(settings.database_url)
        try:
            await conn.execute(
                "INSERT INTO users (app_id, id, custom) SELECT $1, 'u' || g,"
                " jsonb_build_object('tier', CASE WHEN g % 4 = 0 THEN 'gold' ELSE 'free' END)"
                " FROM generate_series(1, 200) g", sync_creds.app_id,
            )
        finally:
            await conn.close()

    asyncio.run(seed())
    start_worker()
    segment = sdk.segment(SegmentType.USER, segment_id="gold",
                          data={"filter": {"tier": {"$eq": "gold"}}})
    assert segment.create()["segment"]["size"] is None
    assert wait_for(lambda: segment.get()["segment"]["size"] == 50)
    segment.update({"filter": {"tier": {"$in": ["gold", "free"]}}})
    assert wait_for(lambda: segment.get()["segment"]["size"] == 200)
    everyone = sdk.segment(SegmentType.USER, segment_id="all", data={"all_users": True})
    everyone.create()
    assert wait_for(lambda: everyone.get()["segment"]["size"] == 200)

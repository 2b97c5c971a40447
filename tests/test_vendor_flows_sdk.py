"""The flows the hosted API's own segment and campaign SDK tests exercise, written afresh and
run through the real `stream-chat` PyPI client against a live server (ISSUE 14 item 6)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from stream_chat.base.exceptions import StreamAPIException
from stream_chat.types.base import SortOrder
from stream_chat.types.segment import SegmentType


@pytest.fixture
def sender(sdk: Any) -> str:
    uid = f"sender-{uuid.uuid4().hex[:8]}"
    sdk.upsert_user({"id": uid, "name": "Sender"})
    return uid


def test_segment_create_get_update_delete(sdk: Any) -> None:
    seg = sdk.segment(SegmentType.USER, data={"name": "vip", "description": "first"})
    made = seg.create()
    assert made.is_ok() and made["segment"]["id"] == seg.segment_id
    assert made["segment"]["deleted_at"] is None
    assert seg.get()["segment"]["name"] == "vip"
    changed = seg.update({"name": "vvip", "description": "second"})
    assert (changed["segment"]["name"], changed["segment"]["description"]) == ("vvip", "second")
    assert seg.delete().is_ok()
    with pytest.raises(StreamAPIException) as e:
        seg.get()
    assert e.value.status_code == 404


def test_segment_targets_cursor_reused_with_another_filter_and_sort(sdk: Any) -> None:
    seg = sdk.segment(segment_type=SegmentType.USER)
    assert "name" in seg.create()["segment"]
    ids = sorted(str(uuid.uuid4()) for _ in range(10))
    assert seg.add_targets(target_ids=ids).is_ok()
    assert seg.target_exists(target_id=ids[0]).is_ok()

    first = seg.query_targets(options={"limit": 3})
    assert [t["target_id"] for t in first["targets"]] == ids[:3] and first["next"]
    # The cursor came from an unfiltered ascending query: it goes on with that query, and the
    # $lte filter and descending sort sent alongside are ignored (SPEC 1).
    second = seg.query_targets(
        filter_conditions={"target_id": {"$lte": "<user_id>"}},
        sort=[{"field": "target_id", "direction": SortOrder.DESC}],
        options={"limit": 3, "next": first["next"]},
    )
    assert [t["target_id"] for t in second["targets"]] == ids[3:6]
    assert second["next"] and second["prev"]
    assert {t["segment_id"] for t in second["targets"]} == {seg.segment_id}
    back = seg.query_targets(options={"limit": 3, "prev": second["prev"]})
    assert [t["target_id"] for t in back["targets"]] == ids[:3]

    assert seg.remove_targets(target_ids=ids).is_ok()
    assert seg.get()["segment"]["size"] == 0
    assert seg.delete().is_ok()


def test_query_segments_by_id(sdk: Any) -> None:
    made = sdk.create_segment(segment_type=SegmentType.USER)
    sid = made["segment"]["id"]
    sdk.create_segment(segment_type=SegmentType.USER)
    assert sdk.add_segment_targets(segment_id=sid, target_ids=[str(uuid.uuid4()) for _ in range(10)]).is_ok()
    found = sdk.query_segments(filter_conditions={"id": {"$eq": sid}},
                               sort=[{"field": "created_at", "direction": SortOrder.DESC}])
    assert [s["id"] for s in found["segments"]] == [sid] and found["segments"][0]["size"] == 10
    assert sdk.remove_segment_targets(segment_id=sid, target_ids=["gone"]).is_ok()
    assert sdk.delete_segment(segment_id=sid).is_ok()


def test_campaign_create_get_update_delete(sdk: Any, sender: str) -> None:
    sid = sdk.create_segment(segment_type=SegmentType.USER)["segment"]["id"]
    camp = sdk.campaign(data={"message_template": {"text": "{Hello}"}, "segment_ids": [sid],
                              "sender_id": sender, "name": "draft name"})
    made = camp.create(data={"name": "created name"})
    assert made["campaign"]["name"] == "created name" and made["campaign"]["id"] == camp.campaign_id
    got = camp.get()["campaign"]
    assert got["name"] == "created name" and got["segment_ids"] == [sid]
    upd = camp.update({"message_template": {"text": "{Hello}"}, "segment_ids": [sid],
                       "sender_id": sender, "name": "renamed"})
    assert upd["campaign"]["name"] == "renamed"
    assert camp.delete().is_ok()
    with pytest.raises(StreamAPIException) as e:
        camp.get()
    assert e.value.status_code == 404
    assert sdk.delete_segment(segment_id=sid).is_ok()


def test_campaign_scheduled_then_stopped(sdk: Any, sender: str) -> None:
    sid = sdk.create_segment(segment_type=SegmentType.USER)["segment"]["id"]
    sdk.add_segment_targets(segment_id=sid, target_ids=[sender])
    camp = sdk.campaign(data={"message_template": {"text": "{Hello}"}, "segment_ids": [sid],
                              "sender_id": sender, "name": "later"})
    assert camp.create()["campaign"]["status"] == "draft"
    in_an_hour = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    started = camp.start(scheduled_for=in_an_hour)
    assert started["campaign"]["status"] == "scheduled" and "name" in started["campaign"]
    stopped = camp.stop()
    assert stopped["campaign"]["status"] == "stopped"
    assert camp.delete().is_ok()
    assert sdk.delete_segment(segment_id=sid).is_ok()


def test_query_campaigns_by_id(sdk: Any, sender: str) -> None:
    sid = sdk.create_segment(segment_type=SegmentType.USER)["segment"]["id"]
    sdk.add_segment_targets(segment_id=sid, target_ids=[sender])
    mine = sdk.create_campaign(data={"message_template": {"text": "{Hello}"}, "segment_ids": [sid],
                                     "sender_id": sender, "name": "mine"})["campaign"]["id"]
    sdk.create_campaign(data={"message_template": {"text": "x"}, "segment_ids": [sid], "sender_id": sender})
    found = sdk.query_campaigns(filter_conditions={"id": {"$eq": mine}},
                                sort=[{"field": "created_at", "direction": SortOrder.DESC}],
                                options={"limit": 10})
    assert [c["id"] for c in found["campaigns"]] == [mine]
    assert sdk.delete_campaign(campaign_id=mine).is_ok()
    assert [c["id"] for c in sdk.query_campaigns(filter_conditions={"id": mine})["campaigns"]] == []

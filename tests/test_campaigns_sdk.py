"""The official stream-chat SDK runs the whole campaign flow against a live server and worker."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from stream_chat.base.exceptions import StreamAPIException
from stream_chat.types.segment import SegmentType

from tests.helpers import wait_for


def test_sdk_campaign_flow(sdk: Any, start_worker: Any) -> None:
    sdk.upsert_users([{"id": "boss", "name": "Boss"},
                      *({"id": f"fan{i}", "name": f"Fan {i}", "club": "ajax"} for i in range(5)),
                      {"id": "other", "name": "Other", "club": "psv"}])
    sdk.create_segment(segment_type=SegmentType.USER, segment_id="ajax", data={"filter": {"club": "ajax"}})
    start_worker()
    c = sdk.campaign(data={
        "segment_ids": ["ajax"], "sender_id": "boss", "name": "hello",
        "message_template": {"text": "Hi {{ receiver.name }} I'm {{ sender.name }}!"},
        "create_channels": True,
        "channel_template": {"type": "messaging", "id": "{{receiver.id}}-{{sender.id}}", "custom": {"origin": "campaign"}},
    })
    created = c.create()
    assert created["campaign"]["status"] == "draft"
    assert c.get()["campaign"]["name"] == "hello"
    c.start()
    done = wait_for(lambda: (g := c.get()["campaign"])["status"] == "completed" and g, timeout=60)
    assert done["stats"]["stats_messages_sent"] == 5 == done["stats"]["stats_recipients_total"]
    ch = sdk.channel("messaging", "fan3-boss")
    state = ch.query()
    assert sorted(m["user_id"] for m in state["members"]) == ["boss", "fan3"]
    assert state["channel"]["origin"] == "campaign"
    msgs = state["messages"]
    assert len(msgs) == 1 and msgs[0]["text"] == "Hi Fan 3 I'm Boss!" and msgs[0]["campaign_id"] == c.campaign_id
    ch.mark_read("fan3")
    assert c.get()["campaign"]["stats"]["stats_users_read"] == 1
    with pytest.raises(StreamAPIException):
        c.start()
    res = sdk.query_campaigns(filter_conditions={"status": "completed"})
    assert [x["id"] for x in res["campaigns"]] == [c.campaign_id]
    test = c.client.test_campaign(c.campaign_id, ["fan0"])
    assert test["sent"][0]["text"] == "Hi Fan 0 I'm Boss!"


def test_sdk_schedule_stop_update_delete(sdk: Any, start_worker: Any) -> None:
    sdk.upsert_users([{"id": "boss", "name": "Boss"}, {"id": "a", "name": "A"}])
    c = sdk.campaign(data={"user_ids": ["a"], "sender_id": "boss", "message_template": {"text": "x"}})
    c.create()
    c.update({"user_ids": ["a"], "sender_id": "boss", "message_template": {"text": "y"}, "name": "upd"})
    assert c.get()["campaign"]["name"] == "upd"
    start_worker()
    later = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(seconds=1.5)
    got = c.start(scheduled_for=later, stop_at=later + dt.timedelta(hours=1))
    assert got["campaign"]["status"] == "scheduled"
    wait_for(lambda: c.get()["campaign"]["status"] == "completed", timeout=30)
    c2 = sdk.campaign(data={"user_ids": ["a"], "sender_id": "boss", "message_template": {"text": "z"}})
    c2.create()
    c2.start(scheduled_for=dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(hours=1),
             stop_at=dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(seconds=1.5))
    wait_for(lambda: c2.get()["campaign"]["status"] == "stopped", timeout=30)
    c3 = sdk.campaign(data={"user_ids": ["a"], "sender_id": "boss", "message_template": {"text": "w"}})
    c3.create()
    c3.start(scheduled_for=dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(hours=1))
    assert c3.stop()["campaign"]["status"] == "stopped"
    c3.delete()
    with pytest.raises(StreamAPIException):
        c3.get()

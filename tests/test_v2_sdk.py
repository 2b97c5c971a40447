"""The vendor's newer server SDK (PyPI `getstream`, which calls the /api/v2/... paths) drives the
segment, campaign, user and channel flows against a live server and worker."""

from __future__ import annotations

import datetime as dt
from typing import Any

import getstream
import pytest
from getstream.exceptions import StreamApiException as StreamAPIException
from getstream.models import (
    CampaignChannelTemplate,
    CampaignMessageTemplate,
    SortParamRequest,
    UserRequest,
)

from tests.helpers import Creds, LiveServer, wait_for


@pytest.fixture
def client(live_server: LiveServer, sync_creds: Creds) -> Any:
    return getstream.Stream(api_key=sync_creds.api_key, api_secret=sync_creds.api_secret,
                            base_url=live_server.url, timeout=30)


def test_v2_segments(client: Any) -> None:
    chat = client.chat
    made = chat.create_segment(type="user", id="v2seg", name="v2 list").data
    assert made.segment.id == "v2seg" and made.segment.type == "user"
    ids = [f"v2u{i:02d}" for i in range(8)]
    chat.add_segment_targets(id="v2seg", target_ids=ids)
    assert chat.get_segment(id="v2seg").data.segment.size == 8
    chat.segment_target_exists(id="v2seg", target_id="v2u03")
    with pytest.raises(StreamAPIException) as e:
        chat.segment_target_exists(id="v2seg", target_id="nobody")
    assert e.value.status_code == 404
    p1 = chat.query_segment_targets(id="v2seg", limit=3).data
    assert [t.target_id for t in p1.targets] == ids[:3] and p1.next
    # its cursor carries the unfiltered ascending query, whatever Filter/Sort come with it
    p2 = chat.query_segment_targets(id="v2seg", limit=3, next=p1.next, filter={"target_id": {"$lte": "v2u01"}},
                                    sort=[SortParamRequest(field="target_id", direction=-1)]).data
    assert [t.target_id for t in p2.targets] == ids[3:6] and p2.prev
    assert {t.segment_id for t in p2.targets} == {"v2seg"}
    desc = chat.query_segment_targets(id="v2seg", filter={"target_id": {"$gte": "v2u06"}},
                                      sort=[SortParamRequest(field="target_id", direction=-1)]).data
    assert [t.target_id for t in desc.targets] == ["v2u07", "v2u06"]
    chat.delete_segment_targets(id="v2seg", target_ids=ids[:2])
    found = chat.query_segments(filter={"id": {"$eq": "v2seg"}}).data
    assert [s.id for s in found.segments] == ["v2seg"] and found.segments[0].size == 6
    chat.update_segment(id="v2seg", name="renamed")
    assert chat.get_segment(id="v2seg").data.segment.name == "renamed"
    chat.delete_segment(id="v2seg")
    with pytest.raises(StreamAPIException) as e:
        chat.get_segment(id="v2seg")
    assert e.value.status_code == 404


def test_v2_users_channels_and_campaign_run(client: Any, start_worker: Any) -> None:
    client.upsert_users(UserRequest(id="v2boss", name="Boss"),
                        *(UserRequest(id=f"v2fan{i}", name=f"Fan {i}") for i in range(4)))
    got = client.query_users(payload={"filter_conditions": {"id": {"$in": ["v2fan1", "v2boss"]}}}).data
    assert sorted(u.id for u in got.users) == ["v2boss", "v2fan1"]
    start_worker()
    chat = client.chat
    made = chat.create_campaign(
        id="v2camp", sender_id="v2boss", name="v2", user_ids=[f"v2fan{i}" for i in range(4)],
        message_template=CampaignMessageTemplate(text="Hi {{ receiver.name }}"),
        create_channels=True, sender_visibility="hidden",
        channel_template=CampaignChannelTemplate(type="messaging", id="{{ receiver.id }}-v2"),
    ).data
    assert made.campaign.status == "draft" and made.campaign.sender.id == "v2boss"
    page = chat.get_campaign(id="v2camp", limit=2).data
    assert [u.id for u in page.campaign.users] == ["v2fan0", "v2fan1"] and page.users.next
    page2 = chat.get_campaign(id="v2camp", limit=2, next=page.users.next).data
    assert [u.id for u in page2.campaign.users] == ["v2fan2", "v2fan3"]
    assert chat.start_campaign(id="v2camp").data.campaign.status == "in_progress"
    done = wait_for(lambda: (c := chat.get_campaign(id="v2camp").data.campaign).status == "completed" and c,
                    timeout=60)
    assert done.stats.stats_messages_sent == 4
    listed = chat.query_campaigns(filter={"id": "v2camp"}, user_limit=1).data
    assert [c.id for c in listed.campaigns] == ["v2camp"] and len(listed.campaigns[0].users) == 1

    state = chat.get_or_create_channel(type="messaging", id="v2fan2-v2").data
    assert [m.text for m in state.messages] == ["Hi Fan 2"]
    chans = chat.query_channels(filter_conditions={"members": {"$in": ["v2boss"]}}, user_id="v2boss").data
    assert chans.channels == []  # sender_visibility hidden: the sender's list is not flooded
    hidden = chat.query_channels(filter_conditions={"members": {"$in": ["v2boss"]}, "hidden": True},
                                 user_id="v2boss").data
    assert len(hidden.channels) == 4

    later = chat.create_campaign(id="v2later", sender_id="v2boss", user_ids=["v2fan0"],
                                 message_template=CampaignMessageTemplate(text="later")).data
    assert later.campaign.id == "v2later"
    sched = chat.start_campaign(id="v2later", scheduled_for=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).data
    assert sched.campaign.status == "scheduled"
    assert chat.stop_campaign(id="v2later").data.status == "stopped"  # v2 answers the bare campaign
    chat.delete_campaign(id="v2later")
    with pytest.raises(StreamAPIException) as e:
        chat.get_campaign(id="v2later")
    assert e.value.status_code == 404

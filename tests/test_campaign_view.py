"""The campaign object: every CampaignResponse field of the hosted API, the users pager."""

from __future__ import annotations

import orjson

from tests.helpers import Api, assert_error
from tests.test_campaigns_api import campaign, users


async def test_campaign_users_paged_as_the_npm_sdk_asks(api: Api, other_api: Api):
    ids = [f"p{i:02d}" for i in range(7)]
    await users(api, "boss", *ids)
    st, body = await api.post("/campaigns", campaign(id="paged", user_ids=list(reversed(ids))))
    assert st == 201, body
    st, p1 = await api.get("/campaigns/paged", params={"limit": "3"})
    assert st == 200, p1
    assert [u["id"] for u in p1["campaign"]["users"]] == ids[:3] and p1["campaign"]["users"][0]["name"] == "N-p00"
    assert set(p1["users"]) == {"next"}
    st, p2 = await api.get("/campaigns/paged", params={"limit": "3", "next": p1["users"]["next"]})
    assert [u["id"] for u in p2["campaign"]["users"]] == ids[3:6] and set(p2["users"]) == {"next", "prev"}
    st, back = await api.get("/campaigns/paged", params={"limit": "2", "prev": p2["users"]["prev"]})
    assert [u["id"] for u in back["campaign"]["users"]] == ids[1:3]
    # the ?payload={"users": ...} form pages the same way
    st, p3 = await api.get("/campaigns/paged", params={"payload": orjson.dumps(
        {"users": {"limit": 10, "next": p2["users"]["next"]}}).decode()})
    assert [u["id"] for u in p3["campaign"]["users"]] == ids[6:] and "next" not in p3["users"]
    st, whole = await api.get("/campaigns/paged", params={"limit": "0"})
    assert len(whole["campaign"]["users"]) == 7 and whole["users"] == {}
    await api.post("/campaigns", campaign(id="other", user_ids=ids))
    st, body = await api.get("/campaigns/other", params={"next": p1["users"]["next"]})
    assert_error(st, body, 400, 4, "another resource")
    st, body = await api.get("/campaigns/paged", params={"limit": "1001"})
    assert_error(st, body, 400, 4, "limit")


CAMPAIGN_RESPONSE_REQUIRED = (  # the hosted API's CampaignResponse (GetStream/protocol chat-openapi)
    "id", "segment_ids", "segments", "sender_id", "sender_mode", "sender_visibility", "name",
    "create_channels", "show_channels", "description", "skip_push", "skip_webhook", "user_ids",
    "users", "status", "created_at", "updated_at", "stats",
)
STATS_REQUIRED = ("stats_started_at", "stats_completed_at", "stats_messages_sent",
                  "stats_channels_created", "progress", "stats_users_sent", "stats_users_read")


def _complete(c: dict) -> None:
    missing = [k for k in CAMPAIGN_RESPONSE_REQUIRED if k not in c]
    assert not missing, missing
    assert not [k for k in STATS_REQUIRED if k not in c["stats"]]
    assert c["sender"]["id"] == c["sender_id"]


async def test_every_campaign_response_field(api: Api, pool):
    await users(api, "boss", "u1", "u2")
    st, body = await api.post("/segments", {"type": "user", "id": "seg-a", "name": "A"})
    await api.post("/segments/seg-a/addtargets", {"target_ids": ["u1"]})
    st, body = await api.post("/campaigns", campaign(
        id="full", user_ids=None, segment_ids=["seg-a"], sender_visibility="archived", show_channels=True))
    assert st == 201, body
    c = body["campaign"]
    _complete(c)
    assert c["sender"]["name"] == "N-boss" and c["sender"]["created_at"].endswith("Z")
    assert [s["id"] for s in c["segments"]] == ["seg-a"] and c["segments"][0]["size"] == 1
    assert c["segments"][0]["deleted_at"] is None
    assert (c["sender_visibility"], c["show_channels"], c["users"]) == ("archived", True, [])
    assert body["users"] == {}
    st, body = await api.get("/campaigns/full")
    _complete(body["campaign"])
    assert body["campaign"]["sender_visibility"] == "archived"
    st, body = await api.put("/campaigns/full", campaign(user_ids=["u1", "u2"], sender_visibility="hidden"))
    assert (body["campaign"]["sender_visibility"], body["campaign"]["show_channels"]) == ("hidden", False)
    assert [u["id"] for u in body["campaign"]["users"]] == ["u1", "u2"]
    st, body = await api.post("/campaigns/query", {"filter": {"id": "full"}, "user_limit": 1})
    assert st == 200, body
    _complete(body["campaigns"][0])
    assert [u["id"] for u in body["campaigns"][0]["users"]] == ["u1"]
    st, body = await api.post("/campaigns/full/start", {"scheduled_for": "2999-01-01T00:00:00Z"})
    assert st == 200 and body["campaign"]["status"] == "scheduled", body
    _complete(body["campaign"])
    assert "users" in body
    st, body = await api.post("/campaigns/full/stop")
    # campaign events carry the hosted API's `custom` and the embedded objects
    rows = await pool.fetch("SELECT payload FROM outbox WHERE campaign_id = 'full' ORDER BY id")
    stopped = [orjson.loads(r["payload"]) if isinstance(r["payload"], str) else r["payload"] for r in rows]
    assert stopped and stopped[-1]["type"] == "campaign.stopped" and stopped[-1]["custom"] == {}
    assert stopped[-1]["campaign"]["sender"]["id"] == "boss"


async def test_campaign_field_validation(api: Api):
    await users(api, "boss", "u1")
    for over, words in (
        ({"sender_visibility": "invisible"}, "sender_visibility"),
        ({"sender_visibility": 1}, "sender_visibility"),
        ({"show_channels": "yes"}, "show_channels"),
        ({"channel_template": {"type": "messaging", "members": [f"m{i}" for i in range(1001)]}},
         "channel_template.members"),
        ({"channel_template": {"type": "messaging", "members_template": [{"user_id": "m"}] * 1001}},
         "channel_template.members_template"),
    ):
        st, body = await api.post("/campaigns", campaign(**over))
        assert_error(st, body, 400, 4, words)
    big = {"type": "messaging", "id": "{{ receiver.id }}-big", "members": [f"m{i}" for i in range(1000)],
           "members_template": [{"user_id": f"t{i}", "channel_role": "channel_member"} for i in range(1000)]}
    st, body = await api.post("/campaigns", campaign(id="big", channel_template=big))
    assert st == 201, body
    assert len(body["campaign"]["channel_template"]["members"]) == 1000

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

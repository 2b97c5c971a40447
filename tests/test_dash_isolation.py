"""The dashboard acts through the API's rules (issue 18 item 2): another app's campaign id in
a dashboard URL is a 404 that shows and changes nothing; a campaign action without the CSRF
token is refused and changes nothing; the API's rate limit applies to dashboard actions."""

from __future__ import annotations

from tests.dash_harness import sign_in_http
from tests.helpers import Api


async def _campaign(api: Api, cid: str, name: str) -> None:
    st, _ = await api.post("/users", {"users": {"boss": {"id": "boss"}, "amy": {"id": "amy"}}})
    assert st == 201 or st == 200
    st, body = await api.post("/campaigns", {"id": cid, "name": name, "sender_id": "boss", "user_ids": ["amy"],
                                             "message_template": {"text": "hi"}})
    assert st == 201, body


async def test_another_apps_campaign_is_404_in_every_dashboard_url(client, api, other_api, creds):
    await _campaign(other_api, "theirs", "Their secret launch")
    await _campaign(api, "mine", "My campaign")
    csrf = await sign_in_http(client, creds)
    for path in ("/dashboard/campaigns/theirs", "/dashboard/campaigns/theirs/recipients",
                 "/dashboard/campaigns/theirs/edit", "/dashboard/campaigns/theirs/progress.json"):
        r = await client.get(path)
        assert r.status == 404, path
        assert "Their secret launch" not in await r.text(), path
    for action in ("start", "stop", "delete", "edit", "recipients/u1/exclude"):
        r = await client.post(f"/dashboard/campaigns/theirs/{action}", data={"csrf": csrf, "confirmed": "1",
                                                                              "text": "owned", "sender_id": "boss"},
                              allow_redirects=False)
        assert r.status == 404, action
    st, body = await other_api.get("/campaigns/theirs")
    assert st == 200 and body["campaign"]["status"] == "draft"
    assert body["campaign"]["message_template"]["text"] == "hi"
    r = await client.get("/dashboard/campaigns")
    html = await r.text()
    assert "My campaign" in html and "Their secret launch" not in html
    r = await client.get("/dashboard/campaigns/mine")
    assert r.status == 200 and "My campaign" in await r.text()


async def test_campaign_action_without_csrf_token_is_refused_and_changes_nothing(client, api, creds):
    await _campaign(api, "c1", "Launch")
    csrf = await sign_in_http(client, creds)
    for data in ({"confirmed": "1"}, {"confirmed": "1", "csrf": csrf[:-1] + "x"}):
        r = await client.post("/dashboard/campaigns/c1/start", data=data, allow_redirects=False)
        assert r.status == 403
        r = await client.post("/dashboard/campaigns/c1/delete", data=data, allow_redirects=False)
        assert r.status == 403
    st, body = await api.get("/campaigns/c1")
    assert st == 200 and body["campaign"]["status"] == "draft"
    # with the token it runs (so the refusal above was the token, nothing else)
    r = await client.post("/dashboard/campaigns/c1/delete", data={"confirmed": "1", "csrf": csrf},
                          allow_redirects=False)
    assert r.status == 303 and r.headers["Location"] == "/dashboard/campaigns"
    st, _ = await api.get("/campaigns/c1")
    assert st == 404


async def test_delete_without_confirmation_asks_first(client, api, creds):
    await _campaign(api, "c2", "Keep me")
    csrf = await sign_in_http(client, creds)
    r = await client.post("/dashboard/campaigns/c2/delete", data={"csrf": csrf, "confirmed": "0"},
                          allow_redirects=False)
    assert r.status == 200 and "Please confirm" in await r.text()
    st, _ = await api.get("/campaigns/c2")
    assert st == 200


async def test_dashboard_actions_pass_the_apis_rate_limit(client, api, creds):
    await _campaign(api, "c3", "Limited")
    st, _ = await api.patch("/app", {"rate_limits": {"UpdateCampaign": 2}})
    assert st == 200
    csrf = await sign_in_http(client, creds)
    form = {"csrf": csrf, "audience": "users", "user_ids": "amy", "text": "v2", "sender_id": "boss"}
    codes = []
    for _ in range(4):
        r = await client.post("/dashboard/campaigns/c3/edit", data=form, allow_redirects=False)
        codes.append((r.status, await r.text()))
    assert [c for c, _ in codes[:2]] == [303, 303], codes
    assert codes[-1][0] == 429
    assert "too many requests for UpdateCampaign" in codes[-1][1]

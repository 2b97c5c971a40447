"""The campaign wizard's form, posted as a browser posts it (issue 18 item 3): every campaign
type and policy field reaches the API, edit round-trips, bad input shows the API's message
next to its field and creates nothing, the preview renders only this app's users."""

from __future__ import annotations

import html as html_lib
import re

from tests.dash_harness import sign_in_http
from tests.helpers import Api


async def _seed(api: Api) -> None:
    st, _ = await api.post("/users", {"users": {u: {"id": u, "name": u.title()} for u in ("boss", "amy", "ben")}})
    assert st in (200, 201)
    st, body = await api.post("/segments", {"id": "everyone", "type": "user", "all_users": True})
    assert st in (200, 201), body


BASE = {"sender_id": "boss", "channel_type": "messaging", "create_channels": "1", "quiet_hours": "defer"}
AB = {"audience": "users", "user_ids": "amy", "variant_1_id": "a", "variant_1_text": "A", "variant_2_id": "b",
      "variant_2_text": "B", "winner_metric": "read"}


async def test_recurring_campaign_from_the_wizard_and_its_edit_round_trip(client, api, creds):
    await _seed(api)
    csrf = await sign_in_http(client, creds)
    form = {**BASE, "csrf": csrf, "id": "weekly", "name": "Weekly digest", "audience": "segments",
            "segment_ids": "everyone", "text": "Hi {{ receiver.name }}", "type": "recurring",
            "frequency": "weekly", "time": "09:00", "timezone": "Europe/Paris", "day_of_week": "0",
            "max_runs": "3"}
    r = await client.post("/dashboard/campaigns/new", data=form, allow_redirects=False)
    assert r.status == 303, await r.text()
    assert r.headers["Location"] == "/dashboard/campaigns/weekly"
    st, body = await api.get("/campaigns/weekly")
    c = body["campaign"]
    assert (c["type"], c["segment_ids"], c["sender_id"], c["create_channels"]) == ("recurring", ["everyone"], "boss", True)
    assert c["schedule"]["frequency"] == "weekly" and c["schedule"]["time"] == "09:00"
    assert c["schedule"]["timezone"] == "Europe/Paris" and c["schedule"]["day_of_week"] == 0
    assert c["schedule"]["max_runs"] == 3
    r = await client.get("/dashboard/campaigns/weekly/edit")
    html = await r.text()
    assert 'value="Europe/Paris"' in html and 'value="09:00"' in html and "Hi {{ receiver.name }}" in html
    assert re.search(r'value="everyone" checked', html)
    # the edit form's own values, saved again with one change, change only that
    values = dict(re.findall(r'<input id="f-(\w+)" name="\w+" type="(?:text|number|datetime-local)" value="([^"]*)"', html))
    values = {k: v for k, v in values.items() if v}
    r = await client.post("/dashboard/campaigns/weekly/edit", allow_redirects=False, data={
        **values, "csrf": csrf, "audience": "segments", "segment_ids": "everyone", "type": "recurring",
        "frequency": "weekly", "quiet_hours": "defer", "create_channels": "1", "text": "Hello {{ receiver.name }}"})
    assert r.status == 303, await r.text()
    st, body = await api.get("/campaigns/weekly")
    c2 = body["campaign"]
    assert c2["message_template"]["text"] == "Hello {{ receiver.name }}"
    assert c2["schedule"] == c["schedule"] and c2["name"] == "Weekly digest"


async def test_triggered_campaign_with_variants_tracking_and_policies(client, api, creds):
    await _seed(api)
    csrf = await sign_in_http(client, creds)
    form = {**BASE, "csrf": csrf, "id": "thanks", "audience": "anyone", "type": "triggered",
            "trigger_event": "order.completed", "trigger_filter": '{"data.total": {"$gte": 100}}',
            "delay": "1h", "text": "Thanks {{ receiver.name }}", "track_clicks": "1",
            "variant_1_id": "a", "variant_1_text": "Thanks!", "variant_2_id": "b", "variant_2_weight": "3",
            "variant_2_text": "Thank you, {{ receiver.name }}", "quiet_hours": "skip", "ignore_frequency_caps": "1"}
    r = await client.post("/dashboard/campaigns/new", data=form, allow_redirects=False)
    assert r.status == 303, await r.text()
    st, body = await api.get("/campaigns/thanks")
    c = body["campaign"]
    assert c["type"] == "triggered" and c["trigger"]["event"] == "order.completed"
    assert c["trigger"]["filter"] == {"data.total": {"$gte": 100}} and c["delay"] == "1h"
    assert c["track_clicks"] is True and c["user_ids"] == [] and c["segment_ids"] == []
    assert [(v["id"], v.get("weight", 1)) for v in c["message_template"]["variants"]] == [("a", 1), ("b", 3.0)]
    assert c["quiet_hours"] == "skip" and c["ignore_frequency_caps"] is True


async def test_bad_input_shows_the_apis_message_by_its_field_and_creates_nothing(client, api, creds):
    await _seed(api)
    csrf = await sign_in_http(client, creds)
    cases = [
        ({"type": "triggered", "audience": "anyone", "trigger_event": "order.completed", "trigger_filter": "{nope"},
         "trigger_filter", "trigger.filter is not valid JSON"),
        ({"type": "recurring", "audience": "users", "user_ids": "amy", "frequency": "daily", "time": "09:00",
          "timezone": "Mars/Olympus"}, "timezone", "schedule.timezone"),
        ({"audience": "users", "user_ids": "amy", "sender_id": "nobody"}, "sender_id", "sender_id 'nobody'"),
        ({"audience": "segments"}, "segment_ids", "segment_ids"),
        ({"audience": "users", "user_ids": "amy", "variant_1_id": "only", "variant_1_text": "one"}, "variants",
         "message_template.variants"),
        *(({**AB, "winner_test_fraction": share, "winner_wait": wait}, field, words)
          for share, wait, field, words in [("150", "4h", "winner_test_fraction", "winner.test_fraction"),
                                            ("20", "soon", "winner_wait", "winner.wait"),
                                            ("lots", "4h", "winner_test_fraction", "percent")]),
    ]
    for extra, field, words in cases:
        r = await client.post("/dashboard/campaigns/new", data={**BASE, "csrf": csrf, "text": "hi", **extra})
        html = await r.text()
        assert r.status == 400, (extra, html[:300])
        m = re.search(rf'id="e-{field}" role="alert">([^<]*)<', html)
        assert m is not None and words in html_lib.unescape(m.group(1)), (field, html[html.find("role=\"alert\""):][:300])
    st, body = await api.post("/campaigns/query", {})
    assert body["campaigns"] == []


async def test_start_at_a_scheduled_time(client, api, creds):
    await _seed(api)
    csrf = await sign_in_http(client, creds)
    r = await client.post("/dashboard/campaigns/new", allow_redirects=False, data={
        **BASE, "csrf": csrf, "id": "later", "audience": "users", "user_ids": "amy ben", "text": "hi"})
    assert r.status == 303
    r = await client.post("/dashboard/campaigns/later/start", data={"csrf": csrf, "scheduled_for": "2099-01-02T03:04"},
                          allow_redirects=False)
    assert r.status == 303
    st, body = await api.get("/campaigns/later")
    assert body["campaign"]["status"] == "scheduled"
    assert body["campaign"]["scheduled_for"].startswith("2099-01-02T03:04:00")
    assert body["campaign"]["user_ids"] == ["amy", "ben"]


async def test_preview_renders_for_this_apps_users_only(client, api, other_api, creds):
    await _seed(api)
    st, _ = await other_api.post("/users", {"users": {"zed": {"id": "zed", "name": "Zed", "secret": "s3"}}})
    csrf = await sign_in_http(client, creds)
    text = "Hi {{ receiver.name }} from {{ sender.name }}{{ receiver.secret }}"
    h = {"X-CSRF-Token": csrf}
    r = await client.post("/dashboard/campaigns/preview", headers=h,
                          data={"text": text, "preview_user": "amy", "sender_id": "boss"})
    assert (await r.json()) == {"text": "Hi Amy from Boss", "user": "amy"}
    r = await client.post("/dashboard/campaigns/preview", headers=h,
                          data={"text": text, "preview_user": "zed", "sender_id": "boss"})
    assert (await r.json()) == {"error": "'zed' is not an existing user"}
    r = await client.post("/dashboard/campaigns/preview", data={"text": text, "preview_user": "amy"})
    assert r.status == 403  # no CSRF token
    r = await client.post("/dashboard/campaigns/preview", headers=h, data={
        "text": "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
        "preview_user": "amy"})
    assert "error" in await r.json()


async def test_ab_winner_every_event_trigger_and_stop_at_reach_the_api_and_round_trip(client, api, creds):
    await _seed(api)
    csrf = await sign_in_http(client, creds)
    r = await client.post("/dashboard/campaigns/new", allow_redirects=False, data={
        **BASE, "csrf": csrf, "id": "ab", "audience": "users", "user_ids": "amy ben", "text": "hi",
        "variant_1_id": "a", "variant_1_text": "Hi!", "variant_2_id": "b", "variant_2_text": "Hello!",
        "winner_metric": "click", "winner_test_fraction": "20", "winner_wait": "4h"})
    assert r.status == 303, await r.text()
    st, body = await api.get("/campaigns/ab")
    assert body["campaign"]["winner"] == {"metric": "click", "test_fraction": 0.2, "wait": "4h"}
    page = await (await client.get("/dashboard/campaigns/ab/edit")).text()
    assert re.search(r'<option value="click" selected', page), page[page.find("winner_metric"):][:400]
    assert 'value="20"' in page and 'value="4h"' in page
    page = await (await client.get("/dashboard/campaigns/ab")).text()
    assert "by click after 4h, tested on 20 % of the audience" in page

    r = await client.post("/dashboard/campaigns/new", allow_redirects=False, data={
        **BASE, "csrf": csrf, "id": "each", "audience": "anyone", "type": "triggered",
        "trigger_event": "order.completed", "text": "Thanks", "every_event": "1"})
    assert r.status == 303, await r.text()
    st, body = await api.get("/campaigns/each")
    assert body["campaign"]["once_per_user"] is False
    page = await (await client.get("/dashboard/campaigns/each")).text()
    assert "on every matching event" in page
    page = await (await client.get("/dashboard/campaigns/each/edit")).text()
    assert re.search(r'name="every_event" value="1" checked', page)

    r = await client.post("/dashboard/campaigns/new", allow_redirects=False, data={
        **BASE, "csrf": csrf, "id": "later", "audience": "users", "user_ids": "amy", "text": "hi"})
    assert r.status == 303
    r = await client.post("/dashboard/campaigns/later/start", allow_redirects=False, data={
        "csrf": csrf, "scheduled_for": "2099-01-02T03:04", "stop_at": "2099-01-02T05:00"})
    assert r.status == 303
    st, body = await api.get("/campaigns/later")
    assert body["campaign"]["stop_at"].startswith("2099-01-02T05:00:00")
    page = await (await client.get("/dashboard/campaigns/later")).text()
    assert "Stops at" in page

"""The campaigns list (filters, the API's cursors) and a campaign's page (variants, timeline
granularity, runs of a series), as HTML a browser gets (issue 18 item 3)."""

from __future__ import annotations

import html as html_lib
import re

from tests.dash_harness import sign_in_http
from tests.helpers import Api

ROW_RE = re.compile(r'<tr data-row="([^"]+)">')


async def _users(api: Api) -> None:
    st, _ = await api.post("/users", {"users": {u: {"id": u} for u in ("boss", "amy")}})
    assert st in (200, 201)


async def _make(api: Api, cid: str, **extra) -> None:
    st, body = await api.post("/campaigns", {"id": cid, "name": f"N {cid}", "sender_id": "boss", "user_ids": ["amy"],
                                             "message_template": {"text": "hi"}, **extra})
    assert st == 201, body


async def test_list_pages_with_the_apis_cursors_and_filters_by_status_and_type(client, api, creds):
    await _users(api)
    for i in range(27):
        await _make(api, f"c{i:02d}")
    sched = {"frequency": "daily", "time": "09:00", "timezone": "UTC"}
    await _make(api, "series", type="recurring", schedule=sched)
    st, _ = await api.post("/campaigns/c00/start", {"scheduled_for": "2099-01-01T00:00:00Z"})
    assert st == 200
    await sign_in_http(client, creds)
    r = await client.get("/dashboard/campaigns")
    page1 = await r.text()
    ids1 = ROW_RE.findall(page1)
    assert len(ids1) == 25
    nxt = re.search(r'rel="next" href="([^"]+)">Next page<', page1)
    assert nxt is not None
    r = await client.get(html_lib.unescape(nxt.group(1)))
    page2 = await r.text()
    ids2 = ROW_RE.findall(page2)
    assert len(ids2) == 3 and not set(ids1) & set(ids2)
    assert set(ids1) | set(ids2) == {f"c{i:02d}" for i in range(27)} | {"series"}
    assert "Previous page" in page2 and "Next page" not in page2
    r = await client.get("/dashboard/campaigns?type=recurring")
    assert ROW_RE.findall(await r.text()) == ["series"]
    r = await client.get("/dashboard/campaigns?status=scheduled")
    scheduled = await r.text()
    assert ROW_RE.findall(scheduled) == ["c00"]
    # a live campaign on the page: the page polls its progress
    assert 'data-poll="/dashboard/campaigns.json?ids=c00"' in scheduled
    r = await client.get("/dashboard/campaigns.json?ids=c00,c01")
    body = await r.json()
    assert body["rows"]["c00"]["status"] == "scheduled" and body["rows"]["c01"]["status"] == "draft"
    assert body["done"] is False


async def test_campaign_page_shows_variants_granularity_and_series_runs(client, api, creds):
    await _users(api)
    await _make(api, "ab", message_template={"text": "hi", "variants": [
        {"id": "red", "text": "Red <b>sale</b>"}, {"id": "blue", "text": "Blue sale", "weight": 2}]})
    await _make(api, "series", type="recurring",
                schedule={"frequency": "weekly", "day_of_week": 2, "time": "07:30", "timezone": "Asia/Tokyo"})
    await sign_in_http(client, creds)
    r = await client.get("/dashboard/campaigns/ab?granularity=hour")
    page = await r.text()
    assert r.status == 200
    assert '<a href="?granularity=hour" aria-current="true">per hour</a>' in page
    assert "<td>red</td>" in page and "<td>blue</td>" in page
    assert "Red &lt;b&gt;sale&lt;/b&gt;" in page  # tenant text is escaped
    assert '<svg class="chart"' in page and "Messages per hour" in page
    r = await client.get("/dashboard/campaigns/ab?granularity=week")  # unknown: the default
    assert '<a href="?granularity=minute" aria-current="true">' in await r.text()
    r = await client.get("/dashboard/campaigns/series")
    page = await r.text()
    assert "weekly at 07:30 Asia/Tokyo" in page and "No run yet." in page

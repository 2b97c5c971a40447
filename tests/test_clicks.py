"""GET /c/{token}: real HTTP, no redirect following: 302 to the exact original link, the click
recorded once per recipient in stats_users_clicked and every time in stats_clicks; forged,
altered or unknown tokens 404 (never an open redirect)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient

from broadcaster.domain import links
from broadcaster.domain.links import Click
from broadcaster.settings import Settings
from tests.helpers import Api, assert_error
from tests.test_conversions import send, stats, users

URLS = ["https://shop.example/sale?utm=a&x=%20y#top", "http://blog.example/p/(1)"]


async def follow(client: TestClient, tok: str, method: str = "GET") -> tuple[int, str | None, Any]:
    resp = await client.request(method, f"/c/{tok}", allow_redirects=False)
    body = await resp.read()
    return resp.status, resp.headers.get("Location"), body


async def test_click_redirects_and_counts(api: Api, client: TestClient, settings: Settings, pool: Any,
                                          start_worker: Any) -> None:
    await users(api, "boss", "u1", "u2", "u3", "u4")
    start_worker()
    await send(api, "promo", ["u1", "u2", "u3", "u4"])
    app = api.creds.app_id

    def tok(target: str, no: int, *, camp: str = "promo", test: bool = False, app_id: int = app) -> str:
        return links.token(settings.click_secret, Click(app_id, camp, target, no, URLS[no], test))

    st, loc, _ = await follow(client, tok("u1", 0))
    assert (st, loc) == (302, URLS[0])
    st, loc, _ = await follow(client, tok("u1", 0))  # again: a click, not a new clicker
    assert (st, loc) == (302, URLS[0])
    st, loc, _ = await follow(client, tok("u1", 1))
    assert (st, loc) == (302, URLS[1])
    st, loc, _ = await follow(client, tok("u2", 1))
    assert (st, loc) == (302, URLS[1])
    s = await stats(api, "promo")
    assert (s["stats_users_clicked"], s["stats_clicks"], s["click_rate"]) == (2, 4, 0.5)

    # link previews (HEAD) and test-send links redirect without counting
    st, loc, _ = await follow(client, tok("u3", 0), "HEAD")
    assert (st, loc) == (302, URLS[0])
    st, loc, _ = await follow(client, tok("u3", 0, test=True))
    assert (st, loc) == (302, URLS[0])
    assert (await stats(api, "promo"))["stats_clicks"] == 4

    # forged, altered, foreign: 404 in the error shape, no Location
    good = tok("u1", 0)
    bad = [good[:-2] + ("AA" if good[-2:] != "AA" else "BB"), good[:20], "x" * 40,
           links.token("another-secret", Click(app, "promo", "u1", 0, "https://evil.example", False)),
           tok("nobody", 0), tok("u1", 0, camp="no-such-campaign"), tok("u1", 0, app_id=app + 1000)]
    for t in bad:
        resp = await client.get(f"/c/{t}", allow_redirects=False)
        assert "Location" not in resp.headers
        assert_error(resp.status, await resp.json(), 404, 16, "link")

    # concurrent first clicks of one recipient: one clicker, every click
    answers = await asyncio.gather(*(follow(client, tok("u4", i % 2)) for i in range(20)))
    assert all(a[0] == 302 for a in answers)
    s = await stats(api, "promo")
    assert (s["stats_users_clicked"], s["stats_clicks"]) == (3, 24), s
    assert await pool.fetchval("SELECT count(*) FROM campaign_clicks WHERE campaign_id = 'promo'") == 24
    assert await pool.fetchval("SELECT count(*) FROM campaign_clicks WHERE campaign_id = 'promo' AND first") == 3
    assert await pool.fetchval(
        "SELECT count(*) FROM campaign_recipients WHERE campaign_id = 'promo' AND clicked_at IS NOT NULL") == 3


async def test_track_clicks_is_a_campaign_field(api: Api) -> None:
    await users(api, "boss", "u1")
    base = {"sender_id": "boss", "user_ids": ["u1"], "message_template": {"text": "hi https://x.example"}}
    st, body = await api.post("/campaigns", {**base, "id": "t1", "track_clicks": True})
    assert st == 201 and body["campaign"]["track_clicks"] is True, body
    st, body = await api.post("/campaigns", {**base, "id": "t2"})
    assert st == 201 and body["campaign"]["track_clicks"] is False, body
    st, body = await api.post("/campaigns", {**base, "id": "t3", "track_clicks": "yes"})
    assert_error(st, body, 400, 4, "track_clicks")

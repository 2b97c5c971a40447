"""GET /c/{token}: real HTTP, no redirect following: 302 to the exact original link, the click
recorded (through the outbox) once per recipient in stats_users_clicked and every time in
stats_clicks; forged,
altered or unknown tokens 404 (never an open redirect)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient

from broadcaster.domain import links
from broadcaster.domain.links import Click
from broadcaster.settings import Settings
from tests.helpers import Api, assert_error, await_for
from tests.test_conversions import send, stats, users

URLS = ["https://shop.example/sale?utm=a&x=%20y#top", "http://blog.example/p/(1)"]


async def follow(client: TestClient, tok: str, method: str = "GET") -> tuple[int, str | None, Any]:
    resp = await client.request(method, f"/c/{tok}", allow_redirects=False)
    body = await resp.read()
    return resp.status, resp.headers.get("Location"), body


async def counted(api: Api, cid: str, clicks: int) -> dict[str, Any]:
    """The campaign's stats once the drainer has counted this many clicks (the redirect
    answers when the click is in the outbox)."""
    async def done() -> dict[str, Any] | None:
        s = await stats(api, cid)
        assert s["stats_clicks"] <= clicks, s
        return s if s["stats_clicks"] == clicks else None

    return await await_for(done, timeout=60)  # type: ignore[no-any-return]


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
    s = await counted(api, "promo", 4)
    assert (s["stats_users_clicked"], s["stats_clicks"], s["click_rate"]) == (2, 4, 0.5)

    # link previews (HEAD) and test-send links redirect without counting
    st, loc, _ = await follow(client, tok("u3", 0), "HEAD")
    assert (st, loc) == (302, URLS[0])
    st, loc, _ = await follow(client, tok("u3", 0, test=True))
    assert (st, loc) == (302, URLS[0])
    st, loc, _ = await follow(client, tok("u1", 0))  # a real click after them: it alone is counted
    assert (st, loc) == (302, URLS[0])
    s = await counted(api, "promo", 5)
    assert (s["stats_users_clicked"], s["stats_clicks"]) == (2, 5), s

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
    s = await counted(api, "promo", 25)
    assert (s["stats_users_clicked"], s["stats_clicks"]) == (3, 25), s
    assert await pool.fetchval("SELECT count(*) FROM campaign_clicks WHERE campaign_id = 'promo'") == 25
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


TRACKED_RE = r"http://127\.0\.0\.1:8080/c/[A-Za-z0-9_-]+"


async def test_campaign_messages_carry_tracked_links(api: Api, client: TestClient, pool: Any,
                                                     start_worker: Any) -> None:
    import re

    await users(api, "boss", "u1", "u2", "u3")
    start_worker()
    st, body = await api.post("/campaigns", {
        "id": "two", "sender_id": "boss", "user_ids": ["u1", "u2"], "skip_webhook": True, "track_clicks": True,
        "message_template": {
            "text": f"Hi {{{{ receiver.name }}}}: {URLS[0]} or ({URLS[1]}). Yours, {{{{ sender.name }}}}",
            "attachments": [{"type": "image", "image_url": "https://img.example/a.png",
                             "title_link": "https://shop.example/item?id=7"}]},
        "create_channels": True, "channel_template": {"type": "messaging"}})
    assert st == 201, body
    st, body = await api.post("/campaigns/two/start")
    assert st == 200, body

    async def done() -> bool:
        return bool((await stats(api, "two"))["progress"] == 1)

    from tests.helpers import await_for
    await await_for(done)
    rows = await pool.fetch("SELECT r.target_id, m.text, m.attachments FROM campaign_recipients r"
                            " JOIN messages m ON m.id = r.message_id WHERE r.campaign_id = 'two' ORDER BY r.target_id")
    assert [r["target_id"] for r in rows] == ["u1", "u2"]
    toks: dict[str, list[str]] = {}
    for r in rows:
        found = re.findall(TRACKED_RE, r["text"])
        assert len(found) == 2 and URLS[0] not in r["text"] and "shop.example" not in r["text"], r["text"]
        assert r["text"].startswith(f"Hi {r['target_id'].title()}: http://127.0.0.1:8080/c/")
        att = r["attachments"][0]
        assert att["image_url"] == "https://img.example/a.png"  # images are loaded, not clicked
        assert re.fullmatch(TRACKED_RE, att["title_link"])
        toks[r["target_id"]] = [u.rsplit("/", 1)[1] for u in [*found, att["title_link"]]]
    assert toks["u1"] != toks["u2"]  # per recipient

    expected = [URLS[0], URLS[1], "https://shop.example/item?id=7"]
    for tok, url in zip(toks["u1"], expected, strict=True):
        st, loc, _ = await follow(client, tok)
        assert (st, loc) == (302, url)
    st, loc, _ = await follow(client, toks["u1"][0])
    assert (st, loc) == (302, URLS[0])
    s = await counted(api, "two", 4)
    assert (s["stats_users_clicked"], s["stats_clicks"], s["click_rate"]) == (1, 4, 0.5)
    forged = toks["u2"][0][:-3] + ("xyz" if not toks["u2"][0].endswith("xyz") else "abc")
    resp = await client.get(f"/c/{forged}", allow_redirects=False)
    assert resp.status == 404 and "Location" not in resp.headers

    # a test send tracks its links too; following them redirects without counting
    st, body = await api.post("/campaigns/two/test", {"users": ["u3"]})
    assert st == 200, body
    text = await pool.fetchval("SELECT text FROM messages WHERE id = $1", body["sent"][0]["message_id"])
    tok = re.findall(TRACKED_RE, text)[0].rsplit("/", 1)[1]
    st, loc, _ = await follow(client, tok)
    assert (st, loc) == (302, URLS[0])
    assert (await stats(api, "two"))["stats_clicks"] == 4


async def test_without_track_clicks_links_stay(api: Api, pool: Any, start_worker: Any) -> None:
    await users(api, "boss", "u1")
    start_worker()
    await send(api, "plain", ["u1"])
    st, body = await api.post("/campaigns", {
        "id": "plain2", "sender_id": "boss", "user_ids": ["u1"], "skip_webhook": True,
        "message_template": {"text": f"see {URLS[0]}"}, "create_channels": True,
        "channel_template": {"type": "messaging"}})
    assert st == 201, body
    await api.post("/campaigns/plain2/start")

    async def sent() -> Any:
        return await pool.fetchval("SELECT m.text FROM messages m WHERE m.campaign_id = 'plain2'")

    from tests.helpers import await_for
    assert await await_for(sent) == f"see {URLS[0]}"

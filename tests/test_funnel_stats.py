"""Funnel stats against the interaction tables: after a worker SIGKILL mid-campaign, reads,
clicks and conversions through the API; rates, the timeline and the interactions listing all
agree with the ledger."""

from __future__ import annotations

import signal
from typing import Any

from aiohttp.test_utils import TestClient

from broadcaster.domain import links
from broadcaster.domain.links import Click
from broadcaster.settings import Settings
from tests.helpers import Api, assert_error, await_for, seed_everyone
from tests.test_clicks import counted
from tests.test_conversions import stats


async def all_interactions(api: Api, cid: str, kind: str, limit: int = 7) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    st, body = await api.get(f"/campaigns/{cid}/interactions", params={"type": kind, "limit": str(limit)})
    while True:
        assert st == 200, body
        out += body["interactions"]
        if "next" not in body:
            return out
        # the cursor carries the type: a different one sent along is ignored
        st, body = await api.get(f"/campaigns/{cid}/interactions",
                                 params={"next": body["next"], "limit": str(limit), "type": "sent"})


async def test_stats_equal_ledger_and_interactions_after_sigkill(
    api: Api, client: TestClient, settings: Settings, pool: Any, start_worker: Any,
) -> None:
    n = 3000
    app = api.creds.app_id
    await seed_everyone(api, pool, n)
    st, body = await api.post("/campaigns", {
        "id": "f", "sender_id": "boss", "segment_ids": ["everyone"], "skip_webhook": True, "track_clicks": True,
        "message_template": {"text": "Hi {{ receiver.name }} https://shop.example/x", "variants": [
            {"id": "a", "text": "Hi {{ receiver.name }} https://shop.example/x"},
            {"id": "b", "text": "Hey {{ receiver.name }}: https://shop.example/x"}]},
        "create_channels": True, "channel_template": {"type": "messaging"}})
    assert st == 201, body
    st, body = await api.patch("/app", {"campaign_send_rate": 1500})
    assert st == 200, body
    w1 = start_worker(batch_size=100)
    st, body = await api.post("/campaigns/f/start")
    assert st == 200, body
    await await_for(lambda: _sent_at_least(api, 400))
    w1.send_signal(signal.SIGKILL)
    w1.wait()
    mid = await stats(api, "f")
    assert mid["stats_messages_sent"] < n, mid  # killed mid-campaign
    start_worker(batch_size=100)
    await await_for(lambda: _completed(api), timeout=90)

    led = await pool.fetch("SELECT target_id, channel_cid FROM campaign_recipients WHERE campaign_id = 'f'"
                           " AND status = 'sent' ORDER BY target_id")
    assert len(led) == n
    readers, clickers, buyers = led[:50], led[40:70], led[60:80]
    for r in readers:
        ctype, chid = r["channel_cid"].split(":", 1)
        st, body = await api.post(f"/channels/{ctype}/{chid}/read", {"user_id": r["target_id"]})
        assert st == 200, body
    for r in clickers:
        for _ in range(2):
            tok = links.token(settings.click_secret, Click(app, "f", r["target_id"], 0, "https://shop.example/x", False))
            resp = await client.get(f"/c/{tok}", allow_redirects=False)
            assert resp.status == 302
    await counted(api, "f", 60)
    st, body = await api.post("/conversions", {"conversions": [
        {"id": f"o-{r['target_id']}-{k}", "user_id": r["target_id"], "event": "buy", "value": 1.25, "currency": "EUR"}
        for r in buyers for k in range(3)]})
    assert st == 200 and body["attributed"] == 60, body

    s = await stats(api, "f")
    counts = await pool.fetchrow(
        "SELECT count(*) FILTER (WHERE status IN ('sent', 'read')) AS sent, count(*) FILTER (WHERE status = 'read') AS read,"
        " count(clicked_at) AS clicked FROM campaign_recipients WHERE campaign_id = 'f'")
    assert s["stats_users_sent"] == counts["sent"] == n
    assert s["stats_users_read"] == counts["read"] == 50
    assert s["stats_users_clicked"] == counts["clicked"] == 30 and s["stats_clicks"] == 60
    assert s["stats_users_converted"] == 20 and s["stats_conversions"] == 60 and s["stats_revenue"] == {"EUR": 75.0}
    assert (s["read_rate"], s["click_rate"], s["conversion_rate"]) == (50 / n, 30 / n, 20 / n)

    # stats.variants are counters written with each interaction: equal to the ledger's counts
    per = {r["variant_id"]: {k: int(r[k]) for k in ("sent", "read", "clicked", "converted")} for r in await pool.fetch(
        "SELECT r.variant_id, count(*) FILTER (WHERE r.status IN ('sent', 'read')) AS sent,"
        " count(*) FILTER (WHERE r.status = 'read') AS read, count(r.clicked_at) AS clicked,"
        " count(c.user_id) AS converted FROM campaign_recipients r LEFT JOIN campaign_converters c"
        " ON c.app_id = r.app_id AND c.campaign_id = r.campaign_id AND c.user_id = r.target_id"
        " WHERE r.campaign_id = 'f' GROUP BY 1")}
    assert s["variants"] == per and set(per) == {"a", "b"}, (s["variants"], per)
    assert sum(v["sent"] for v in per.values()) == n and sum(v["converted"] for v in per.values()) == 20

    kinds = {k: await all_interactions(api, "f", k, limit=7 if k != "sent" else 1000)
             for k in ("sent", "read", "clicked", "converted")}
    assert len(kinds["sent"]) == n and len({i["user_id"] for i in kinds["sent"]}) == n
    assert sorted(i["user_id"] for i in kinds["read"]) == [r["target_id"] for r in readers]
    assert len(kinds["clicked"]) == 60 and sum(i["data"]["first"] for i in kinds["clicked"]) == 30
    assert {i["user_id"] for i in kinds["clicked"]} == {r["target_id"] for r in clickers}
    assert len(kinds["converted"]) == 60 and len({i["user_id"] for i in kinds["converted"]}) == 20
    one = kinds["converted"][0]
    assert one["type"] == "converted" and one["data"]["value"] == 1.25 and one["message_id"]
    assert all(i["message_id"] for k in kinds.values() for i in k)

    for g in ("minute", "hour", "day"):
        st, body = await api.get("/campaigns/f/stats", params={"granularity": g})
        assert st == 200, body
        tl = body["timeline"]
        tot = {k: sum(b[k] for b in tl) for k in ("sent", "read", "clicked", "clicks", "converted", "conversions", "errored")}
        assert tot == {"sent": n, "read": 50, "clicked": 30, "clicks": 60, "converted": 20, "conversions": 60, "errored": 0}
    assert 1 <= len(tl) <= 2  # days (UTC): the run may straddle midnight
    st, body = await api.get("/campaigns/f/stats", params={"granularity": "week"})
    assert_error(st, body, 400, 4, "granularity")


async def test_interactions_paging_and_errors(api: Api, pool: Any, start_worker: Any) -> None:
    st, body = await api.post("/users", {"users": {u: {"id": u} for u in ["boss", *(f"u{i}" for i in range(10))]}})
    assert st in (200, 201), body
    st, body = await api.post("/campaigns", {
        "id": "p", "sender_id": "boss", "user_ids": [f"u{i}" for i in range(10)], "skip_webhook": True,
        "message_template": {"text": "hi"}, "create_channels": True, "channel_template": {"type": "messaging"}})
    assert st == 201, body
    start_worker()
    await api.post("/campaigns/p/start")
    await await_for(lambda: _completed(api, "p"))
    st, first = await api.get("/campaigns/p/interactions", params={"type": "sent", "limit": "4"})
    assert st == 200 and [i["user_id"] for i in first["interactions"]] == ["u0", "u1", "u2", "u3"], first
    assert "prev" not in first
    st, second = await api.get("/campaigns/p/interactions", params={"next": first["next"], "limit": "4"})
    assert [i["user_id"] for i in second["interactions"]] == ["u4", "u5", "u6", "u7"]
    st, back = await api.get("/campaigns/p/interactions", params={"prev": second["prev"], "limit": "4"})
    assert back["interactions"] == first["interactions"]
    i = first["interactions"][0]
    assert set(i) == {"user_id", "type", "at", "message_id", "data"} and i["type"] == "sent"
    for params, words in [({"type": "opened"}, ("type",)), ({}, ("type",)),
                          ({"type": "sent", "limit": "5000"}, ("limit",)),
                          ({"next": "garbage"}, ("next",))]:
        st, body = await api.get("/campaigns/p/interactions", params=params)
        assert_error(st, body, 400, 4, *words)
    st, body = await api.get("/campaigns/nope/interactions", params={"type": "sent"})
    assert_error(st, body, 404, 16, "nope")


async def _sent_at_least(api: Api, k: int) -> bool:
    return bool((await stats(api, "f"))["stats_messages_sent"] >= k)


async def _completed(api: Api, cid: str = "f") -> bool:
    st, body = await api.get(f"/campaigns/{cid}")
    return bool(body["campaign"]["status"] == "completed")

"""POST /conversions: last-received attribution within the app's window, de-duplication by id,
revenue per currency, all-or-nothing validation, and counters exact under concurrent calls."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from broadcaster import timefmt
from tests.helpers import Api, assert_error, await_for


async def users(api: Api, *ids: str) -> None:
    st, body = await api.post("/users", {"users": {u: {"id": u, "name": u.title()} for u in ids}})
    assert st == 201 or st == 200, body


async def send(api: Api, cid: str, to: list[str], channel_id: str | None = None) -> dict[str, Any]:
    st, body = await api.post("/campaigns", {
        "id": cid, "sender_id": "boss", "user_ids": to, "skip_webhook": True,
        "message_template": {"text": f"{cid} for {{{{ receiver.name }}}}"}, "create_channels": True,
        "channel_template": {"type": "messaging", **({"id": channel_id} if channel_id else {})},
    })
    assert st == 201, body
    st, body = await api.post(f"/campaigns/{cid}/start")
    assert st == 200, body

    async def done() -> dict[str, Any] | None:
        _, b = await api.get(f"/campaigns/{cid}")
        return b["campaign"] if b["campaign"]["status"] == "completed" else None

    return await await_for(done)  # type: ignore[no-any-return]


async def sent_at(api: Api, cid: str, user: str) -> Any:
    st, body = await api.get(f"/campaigns/{cid}/recipients", params={"limit": "100"})
    assert st == 200, body
    row = next(r for r in body["recipients"] if r["target_id"] == user)
    return timefmt.parse(row["sent_at"], "sent_at")


async def convert(api: Api, *items: dict[str, Any]) -> dict[str, Any]:
    st, body = await api.post("/conversions", {"conversions": list(items)})
    assert st == 200, body
    return body


async def stats(api: Api, cid: str) -> dict[str, Any]:
    st, body = await api.get(f"/campaigns/{cid}")
    assert st == 200, body
    return body["campaign"]["stats"]  # type: ignore[no-any-return]


async def test_last_received_within_window(api: Api, other_api: Api, pool: Any, start_worker: Any) -> None:
    await users(api, "boss", "u1", "u2", "u3")
    start_worker()
    await send(api, "older", ["u1", "u2"])
    # in a channel of its own: the newest message over all the user's channels wins
    await send(api, "newer", ["u1"], channel_id="newer-{{ receiver.id }}")
    a1, b1, a2 = await sent_at(api, "older", "u1"), await sent_at(api, "newer", "u1"), await sent_at(api, "older", "u2")
    assert a1 < b1

    def at(t: Any) -> str:
        return timefmt.fmt(t)  # type: ignore[return-value]

    body = await convert(
        api,
        {"id": "c-now", "user_id": "u1", "event": "purchase", "value": 10, "currency": "eur"},
        {"id": "c-between", "user_id": "u1", "event": "purchase", "value": 7, "currency": "EUR",
         "created_at": at(b1 - timedelta(milliseconds=1))},
        {"id": "c-before-all", "user_id": "u1", "event": "purchase", "created_at": at(a1 - timedelta(seconds=1))},
        {"id": "c-u2", "user_id": "u2", "event": "signup"},
        {"id": "c-nobody", "user_id": "u3", "event": "purchase", "value": 1, "currency": "USD"},
        {"id": "c-later", "user_id": "u1", "event": "purchase", "value": 5.5, "currency": "EUR"},
        {"id": "c-usd", "user_id": "u1", "event": "purchase", "value": 3, "currency": "USD"},
    )
    got = {c["id"]: (c["status"], c["campaign_id"]) for c in body["conversions"]}
    assert got == {
        "c-now": ("attributed", "newer"), "c-between": ("attributed", "older"),
        "c-before-all": ("unattributed", None), "c-u2": ("attributed", "older"),
        "c-nobody": ("unattributed", None), "c-later": ("attributed", "newer"), "c-usd": ("attributed", "newer"),
    }
    assert (body["attributed"], body["unattributed"], body["duplicates"]) == (5, 2, 0)
    msg = await pool.fetchval("SELECT message_id FROM campaign_recipients WHERE campaign_id = 'newer' AND target_id = 'u1'")
    assert next(c for c in body["conversions"] if c["id"] == "c-now")["message_id"] == msg

    # the same ids again (and one twice in the call): recorded once, reported as duplicates
    again = await convert(
        api, {"id": "c-now", "user_id": "u1", "event": "purchase", "value": 99, "currency": "EUR"},
        {"id": "c-new", "user_id": "u1", "event": "purchase"}, {"id": "c-new", "user_id": "u1", "event": "x"},
    )
    assert [(c["status"], c["campaign_id"]) for c in again["conversions"]] == [
        ("duplicate", "newer"), ("attributed", "newer"), ("duplicate", "newer")]

    s = await stats(api, "newer")
    assert (s["stats_conversions"], s["stats_users_converted"]) == (4, 1)
    assert s["stats_revenue"] == {"EUR": 15.5, "USD": 3.0}
    assert s["conversion_rate"] == 1.0
    o = await stats(api, "older")
    assert (o["stats_conversions"], o["stats_users_converted"], o["stats_revenue"]) == (2, 2, {"EUR": 7.0})
    assert o["conversion_rate"] == 1.0  # u1 and u2 of 2 sent
    assert await pool.fetchval("SELECT count(*) FROM conversions") == 8

    # a shorter window: u2's message is outside it two hours later, inside after thirty minutes
    st, body = await api.patch("/app", {"attribution_window": "1h"})
    assert st == 200, body
    st, body = await api.get("/app")
    assert body["app"]["attribution_window"] == "1h"
    late = await convert(
        api, {"id": "w-out", "user_id": "u2", "event": "p", "created_at": at(a2 + timedelta(hours=2))},
        {"id": "w-in", "user_id": "u2", "event": "p", "created_at": at(a2 + timedelta(minutes=30))},
    )
    assert [(c["status"], c["campaign_id"]) for c in late["conversions"]] == [
        ("unattributed", None), ("attributed", "older")]

    # a deleted campaign leaves its conversions recorded (ids still de-duplicate) but unattributed
    st, body = await api.delete("/campaigns/older")
    assert st == 200, body
    assert await pool.fetchval("SELECT count(*) FROM conversions WHERE campaign_id = 'older'") == 0
    dup = await convert(api, {"id": "c-u2", "user_id": "u2", "event": "signup"})
    assert dup["conversions"][0]["status"] == "duplicate" and dup["conversions"][0]["campaign_id"] is None

    # another app's user of the same id received nothing from this app
    other = await convert(other_api, {"id": "c-now", "user_id": "u1", "event": "purchase"})
    assert other["conversions"][0]["status"] == "unattributed"
    assert (await stats(api, "newer"))["stats_conversions"] == 4


async def test_validation_is_all_or_nothing(api: Api, pool: Any) -> None:
    ok_item = {"user_id": "u1", "event": "purchase"}
    for bad, words in [
        ({"conversions": []}, ("conversions", "1 to 1000")),
        ({"conversions": [ok_item] * 1001}, ("conversions", "1 to 1000")),
        ({"conversions": [ok_item, {"event": "x"}]}, ("conversions[1].user_id",)),
        ({"conversions": [ok_item, {"user_id": "u 1", "event": "x"}]}, ("conversions[1].user_id",)),
        ({"conversions": [ok_item, {"user_id": "u1"}]}, ("conversions[1].event",)),
        ({"conversions": [{**ok_item, "value": 3}]}, ("conversions[0].currency",)),
        ({"conversions": [{**ok_item, "value": "3", "currency": "EUR"}]}, ("conversions[0].value",)),
        ({"conversions": [{**ok_item, "currency": "EURO"}]}, ("conversions[0].currency",)),
        ({"conversions": [{**ok_item, "created_at": "yesterday"}]}, ("conversions[0].created_at",)),
        ({"conversions": [{**ok_item, "id": ""}]}, ("conversions[0].id",)),
        ({"conversions": [ok_item, {**ok_item, "event": "buy\u0000"}]}, ("conversions[1].event", "NUL")),
        ({"conversions": [{**ok_item, "user_id": "u\u00001"}]}, ("conversions[0].user_id",)),
    ]:
        st, body = await api.post("/conversions", bad)
        assert_error(st, body, 400, 4, *words)
    assert await pool.fetchval("SELECT count(*) FROM conversions") == 0
    for bad_window in ("7x", "0d", "400d", 7):
        st, body = await api.patch("/app", {"attribution_window": bad_window})
        assert_error(st, body, 400, 4, "attribution_window")
    st, body = await api.get("/app")
    assert body["app"]["attribution_window"] == "7d"
    st, body = await api.post("/conversions", {"conversions": [ok_item] * 1000})
    assert st == 200 and body["unattributed"] == 1000, body


async def test_concurrent_calls_count_each_conversion_once(api: Api, pool: Any, start_worker: Any) -> None:
    ids = [f"u{i:03d}" for i in range(100)]
    await users(api, "boss", *ids)
    start_worker()
    await send(api, "promo", ids)
    items = [{"id": f"order-{i}", "user_id": ids[i % 100], "event": "purchase", "value": 2, "currency": "EUR"}
             for i in range(300)]
    # eight calls, each the same 300 conversions in its own order
    calls = [items[k * 37 % 300:] + items[:k * 37 % 300] for k in range(8)]
    answers = await asyncio.gather(*(api.post("/conversions", {"conversions": c}) for c in calls))
    assert all(st == 200 for st, _ in answers), answers
    assert sum(b["attributed"] for _, b in answers) == 300
    assert sum(b["duplicates"] for _, b in answers) == 7 * 300
    s = await stats(api, "promo")
    assert (s["stats_conversions"], s["stats_users_converted"], s["stats_revenue"]) == (300, 100, {"EUR": 600.0})
    assert await pool.fetchval("SELECT count(*) FROM conversions WHERE campaign_id = 'promo'") == 300

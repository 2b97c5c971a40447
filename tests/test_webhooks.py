"""Webhooks end to end: a campaign run by a real worker reaches a real receiver, each event
signed as the stream-chat SDK expects; skip_webhook; the send rate; policy as pure rules."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from stream_chat import StreamChat

from broadcaster.webhooks import policy, sign, verify
from tests.helpers import Api, await_for
from tests.test_webhook_delivery import Receiver


async def make_users(api: Api, *ids: str) -> None:
    st, body = await api.post("/users", {"users": {i: {"id": i, "name": f"N-{i}"} for i in ids}})
    assert st in (200, 201), body


async def run_campaign(api: Api, cid: str, user_ids: list[str], **extra: Any) -> dict[str, Any]:
    st, body = await api.post("/campaigns", {
        "id": cid, "sender_id": "boss", "user_ids": user_ids,
        "message_template": {"text": "Hi {{ receiver.name }}"},
        "create_channels": True, "channel_template": {"type": "messaging"}, **extra,
    })
    assert st == 201, body
    st, body = await api.post(f"/campaigns/{cid}/start")
    assert st == 200, body

    async def done() -> Any:
        st, body = await api.get(f"/campaigns/{cid}")
        return body["campaign"] if body["campaign"]["status"] == "completed" else None

    return await await_for(done, timeout=60)  # type: ignore[no-any-return]


@pytest.fixture
async def receiver():
    r = await Receiver().start()
    yield r
    await r.stop()


async def test_campaign_events_reach_receiver_signed(api: Api, receiver: Receiver, start_worker):
    await make_users(api, "boss", "u1", "u2", "u3")
    await api.patch("/app", {"webhook_url": receiver.url})
    start_worker()
    await run_campaign(api, "c1", ["u1", "u2", "u3"])
    await run_campaign(api, "quiet", ["u1", "u2"], skip_webhook=True)

    def of(cid: str) -> list[dict[str, Any]]:
        out = []
        for g in receiver.got:
            e = g["event"]
            c = e.get("campaign", {}).get("id") or (e.get("message") or {}).get("campaign_id")
            if c == cid or (cid == "c1" and e["type"] == "channel.created"):
                out.append(g)
        return out

    async def all_in() -> bool:
        types = [g["event"]["type"] for g in receiver.got]
        return types.count("campaign.completed") == 2 and types.count("message.new") >= 3

    await await_for(all_in, timeout=30)
    sdk = StreamChat(api.creds.api_key, api.creds.api_secret)
    for g in receiver.got:
        assert sdk.verify_webhook(g["body"], g["headers"]["X-Signature"])
        assert g["headers"]["X-Api-Key"] == api.creds.api_key
    c1 = [g["event"]["type"] for g in of("c1")]
    assert c1[0] == "campaign.started" and c1[-1] == "campaign.completed"
    assert c1.count("message.new") == 3 and c1.count("channel.created") == 3
    msg = next(g["event"] for g in of("c1") if g["event"]["type"] == "message.new")
    assert msg["message"]["text"].startswith("Hi N-u") and msg["cid"].startswith("messaging:")
    assert msg["channel_type"] == "messaging" and msg["user"]["id"] == "boss"
    done = next(g["event"] for g in of("c1") if g["event"]["type"] == "campaign.completed")
    assert done["campaign"]["stats"]["stats_messages_sent"] == 3
    # skip_webhook: campaign events only
    quiet = [g["event"]["type"] for g in of("quiet")]
    assert quiet == ["campaign.started", "campaign.completed"]


def test_receivers_and_filters():
    s = {"webhook_url": "http://a/", "webhook_events": ["campaign.started"],
         "event_hooks": [{"id": "h", "webhook_url": "http://b/", "event_types": [], "enabled": True},
                         {"id": "x", "webhook_url": "http://c/", "event_types": [], "enabled": False}]}
    assert policy.receivers(s, "campaign.started") == [("webhook_url", "http://a/"), ("hook:h", "http://b/")]
    assert policy.receivers(s, "message.new") == [("hook:h", "http://b/")]
    assert policy.receivers({}, "message.new") == []


def test_retry_decisions():
    d = policy.decide
    kw: dict[str, Any] = {"retry_after": None, "series_age_s": 0, "window_s": 86400, "jitter": 0.5}
    assert d(200, 1, **kw).outcome == "delivered"
    assert d(204, 1, **kw).outcome == "delivered"
    for final in (400, 401, 404, 410, 301):
        assert d(final, 1, **kw).outcome == "failed"
    delays = [d(500, n, **kw).delay for n in range(1, 6)]
    assert delays == sorted(delays) and delays[1] == 2 * delays[0]
    assert all(d(s, 1, **kw).outcome == "retry" for s in (None, 408, 429, 500, 502, 503))
    assert d(429, 1, **{**kw, "retry_after": "7"}).delay == 7
    assert d(500, 40, **kw).delay <= policy.BACKOFF_CAP_S
    assert d(500, 3, **{**kw, "series_age_s": 86399}).outcome == "failed"  # window spent
    assert policy.parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


def test_holds_keep_campaign_order():
    k = ("a", "c")
    evs = [(k, True), (k, False), (k, False), (None, False), (k, True)]
    assert policy.holds(evs, {}) == [False, True, True, False, True]
    assert policy.holds([(k, False)], {k: (True, False)}) == [False]
    assert policy.holds([(k, True)], {k: (True, False)}) == [True]


def test_sign_and_verify():
    body = b'{"type":"message.new"}'
    sig = sign(body, "s3cret-long-enough-for-hs256-keys-000")
    assert verify(body, sig, "s3cret-long-enough-for-hs256-keys-000") and verify(body, sig.encode(), "s3cret-long-enough-for-hs256-keys-000")
    assert not verify(body, sig, "other") and not verify(body + b"x", sig, "s3cret-long-enough-for-hs256-keys-000")
    assert StreamChat("k", "s3cret-long-enough-for-hs256-keys-000").verify_webhook(body, sig)


async def test_replay_and_failed_are_per_app(api: Api, other_api: Api, pool):
    await pool.execute(
        "INSERT INTO webhook_deliveries (app_id, event_id, receiver, url, event_type, barrier,"
        " payload, state, failed_at) VALUES ($1, 1, 'webhook_url', 'http://x/', 'message.new',"
        " false, '{}', 'failed', now())", api.creds.app_id)
    st, body = await api.get("/webhooks/failed")
    assert st == 200 and len(body["webhooks"]) == 1
    wid = body["webhooks"][0]["id"]
    st, body = await other_api.get("/webhooks/failed")
    assert st == 200 and body["webhooks"] == []
    st, body = await other_api.post("/webhooks/replay", {"ids": [wid]})
    assert st == 200 and body["replayed"] == 0
    st, body = await api.get("/webhooks/failed", params={"limit": "0"})  # 0 = the default
    assert st == 200 and len(body["webhooks"]) == 1, body
    st, body = await api.get("/webhooks/failed", params={"limit": "1001"})
    assert st == 400 and "limit" in body["message"], body
    await asyncio.sleep(0)


def test_receiver_url_is_current():
    s = {"webhook_url": "http://a/", "event_hooks": [
        {"id": "h", "webhook_url": "http://b/", "enabled": True},
        {"id": "x", "webhook_url": "http://c/", "enabled": False}]}
    assert policy.receiver_url(s, "webhook_url") == "http://a/"
    assert policy.receiver_url(s, "hook:h") == "http://b/"
    assert policy.receiver_url(s, "hook:x") is None
    assert policy.receiver_url({}, "webhook_url") is None


def test_moved_receivers_are_those_kept_with_another_url():
    old = {"webhook_url": "http://a/", "event_hooks": [
        {"id": "h", "webhook_url": "http://b/"}, {"id": "k", "webhook_url": "http://k/"}]}
    new = {"webhook_url": "http://a2/", "event_hooks": [
        {"id": "h", "webhook_url": "http://b/", "enabled": False}, {"id": "n", "webhook_url": "http://n/"}]}
    assert policy.moved_receivers(old, new) == {"webhook_url": "http://a2/"}  # h same URL, k gone, n new
    assert policy.moved_receivers(old, old) == {}
    assert policy.active_receivers(new) == {"webhook_url": "http://a2/", "hook:n": "http://n/"}


async def test_ordering_across_routing_batches(api: Api, pool):
    """campaign.started before the campaign's other events, campaign.completed after them,
    also when they reach the dispatcher in different routing batches (no worker: the store
    and router directly)."""
    from broadcaster.store import deliveries as store
    from broadcaster.store import outbox
    from broadcaster.webhooks import dispatch

    await api.patch("/app", {"webhook_url": "http://127.0.0.1:9/hook"})
    app_id = api.creds.app_id
    key = (app_id, policy.MAIN_RECEIVER, "c1")

    async def add(*types: str) -> None:
        async with pool.acquire() as conn:
            for t in types:
                await outbox.add(conn, app_id, t, {"type": t}, "c1")
        assert await dispatch.route(pool) == len(types)

    async def claim() -> list[str]:
        rows = await store.claim_for(pool, [(app_id, policy.MAIN_RECEIVER, 100)], 60)
        return sorted([await pool.fetchval(
            "SELECT event_type FROM webhook_deliveries WHERE id = $1", r["id"]) for r in rows])

    async def done(ids: list[int]) -> None:
        async with pool.acquire() as conn, conn.transaction():
            await store.finish(conn, delivered=[(i, 1) for i in ids], retries=[], failures=[],
                               released=[key])

    await add("campaign.started")
    assert await claim() == ["campaign.started"]
    await add("message.new", "channel.created", "message.new", "campaign.completed")
    assert await claim() == []  # all wait for campaign.started, in flight
    started = await pool.fetchval("SELECT id FROM webhook_deliveries WHERE event_type = 'campaign.started'")
    await done([started])
    assert await claim() == ["channel.created", "message.new", "message.new"]
    assert await claim() == []  # campaign.completed waits for them
    msgs = [r["id"] for r in await pool.fetch(
        "SELECT id FROM webhook_deliveries WHERE event_type <> 'campaign.completed'")]
    async with pool.acquire() as conn, conn.transaction():  # one fails for good: no longer blocks
        await store.finish(conn, delivered=[(i, 1) for i in msgs[:2]], retries=[],
                           failures=[(msgs[2], 1, 400, "x")], released=[key])
    assert await claim() == ["campaign.completed"]


async def test_failed_pages_forwards_and_back(api: Api, other_api: Api, pool):
    await pool.execute(
        "INSERT INTO webhook_deliveries (app_id, event_id, receiver, url, event_type, barrier,"
        " payload, state, failed_at) SELECT $1, g, 'webhook_url', 'http://x/', 'message.new',"
        " false, '{}', 'failed', now() FROM generate_series(1, 5) g", api.creds.app_id)
    st, p1 = await api.get("/webhooks/failed", params={"limit": "2"})
    assert st == 200 and len(p1["webhooks"]) == 2 and "prev" not in p1, p1
    st, p2 = await api.get("/webhooks/failed", params={"limit": "2", "next": p1["next"]})
    assert st == 200 and len(p2["webhooks"]) == 2 and p2.get("prev") and p2.get("next"), p2
    st, p3 = await api.get("/webhooks/failed", params={"limit": "2", "next": p2["next"]})
    assert st == 200 and len(p3["webhooks"]) == 1 and "next" not in p3, p3
    st, back = await api.get("/webhooks/failed", params={"limit": "2", "prev": p3["prev"]})
    assert st == 200 and [w["id"] for w in back["webhooks"]] == [w["id"] for w in p2["webhooks"]], back
    st, first = await api.get("/webhooks/failed", params={"limit": "2", "prev": back["prev"]})
    assert [w["id"] for w in first["webhooks"]] == [w["id"] for w in p1["webhooks"]] and "prev" not in first
    all_ids = [w["id"] for w in p1["webhooks"] + p2["webhooks"] + p3["webhooks"]]
    assert len(set(all_ids)) == 5
    # another app's cursor is refused
    st, body = await other_api.get("/webhooks/failed", params={"next": p1["next"]})
    assert st == 400 and "another resource" in body["message"], body


async def test_routing_expands_batch_rows_and_shares_rounds_between_apps(api: Api, other_api: Api, pool):
    """A campaign batch's one outbox row (migration 0130) becomes its channel.created events,
    then its message.new events, bodies built from the rows they name; a pre-0130 reference
    row is still routed. Each app gets its share of a round: the other app's event is routed
    in the first round although this app's rows came first."""
    import orjson

    from broadcaster.webhooks import dispatch

    a, b = api.creds.app_id, other_api.creds.app_id
    for x in (api, other_api):
        st, body = await x.patch("/app", {"webhook_url": "http://127.0.0.1:9/hook"})
        assert st == 200, body
    prefix = "0190f0f0-0000-7000-8000-0000000"
    await pool.execute("INSERT INTO channels (app_id, cid, type, id) VALUES ($1, 'messaging:one', 'messaging', 'one')", a)
    await pool.execute(
        "INSERT INTO messages (app_id, id, cid, user_id, text, campaign_id) SELECT $1, $2 || lpad(to_hex(g), 5, '0'),"
        " 'messaging:one', 'boss', 'hi ' || g, 'c1' FROM generate_series(1, 3) g", a, prefix)
    user, at = {"id": "boss", "name": "", "role": "user"}, "2026-12-01T00:00:00Z"
    rows = [("batch", {"p": prefix, "m": [1, 2, 3], "c": ["messaging:one"], "user": user, "at": at}, 4)]
    rows += [("batch", {"p": prefix, "m": [1], "c": [], "user": user, "at": at}, 1)] * 2
    rows += [("message.new", {"ref": prefix + "00002", "user": user, "at": at}, 1),  # before 0130
             ("message.new", {"ref": "gone", "user": user, "at": at}, 1)]
    for typ, payload, n in rows:
        await pool.execute("INSERT INTO outbox (app_id, event_type, campaign_id, payload, events)"
                           " VALUES ($1, $2, 'c1', $3, $4)", a, typ, payload, n)
    await pool.execute("INSERT INTO outbox (app_id, event_type, campaign_id, payload) VALUES"
                       " ($1, 'campaign.started', 'b1', '{\"type\": \"campaign.started\"}')", b)
    assert await dispatch.route(pool, limit=4) == 5  # a's first row (4 events) and b's one
    assert await pool.fetchval("SELECT count(*) FROM webhook_deliveries WHERE app_id = $1", b) == 1
    assert await dispatch.route(pool, limit=100) == 4
    got = [(r["event_type"], orjson.loads(r["payload"])) for r in await pool.fetch(
        "SELECT event_type, payload FROM webhook_deliveries WHERE app_id = $1 ORDER BY event_id", a)]
    assert [t for t, _ in got] == ["channel.created"] + ["message.new"] * 7
    assert got[0][1]["channel"]["cid"] == "messaging:one" and got[0][1]["user"] == user
    texts = [p["message"].get("text") for _, p in got[1:]]
    assert texts == ["hi 1", "hi 2", "hi 3", "hi 1", "hi 1", "hi 2", None]
    assert got[1][1]["cid"] == "messaging:one" and got[1][1]["message"]["campaign_id"] == "c1"
    assert got[-1][1]["message"] == {"id": "gone"}  # deleted before routing: just its id
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 0

"""Standard Webhooks signatures, checked by the independent `standardwebhooks` package (PyPI):
a per-receiver secret shown once, rotation with an overlap during which both signatures are
sent, and a replayed (old) request refused by its timestamp."""

from __future__ import annotations

import time
from typing import Any

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError
from stream_chat import StreamChat

from broadcaster.webhooks import sign_standard, verify_standard
from tests.helpers import Api, assert_error, await_for
from tests.test_webhook_delivery import Receiver, add_events, ev


@pytest.fixture
async def receiver():
    r = await Receiver().start()
    yield r
    await r.stop()


def _headers(g: dict[str, Any]) -> dict[str, str]:
    return {k.lower(): v for k, v in g["headers"].items()}


async def test_each_receiver_signs_with_its_own_secret(api: Api, pool, receiver: Receiver, start_worker):
    other = await Receiver().start()
    try:
        st, body = await api.patch("/app", {"webhook_url": receiver.url,
                                            "event_hooks": [{"id": "h1", "webhook_url": other.url}]})
        assert st == 200, body
        secrets = body["webhook_secrets"]
        assert set(secrets) == {"webhook_url", "hook:h1"}
        assert all(s.startswith("whsec_") for s in secrets.values())
        assert secrets["webhook_url"] != secrets["hook:h1"]
        # shown once: neither GET /app nor a later PATCH repeats them
        st, app = await api.get("/app")
        assert "whsec_" not in str(app)
        st, again = await api.patch("/app", {"webhook_rate_limit": 0})
        assert st == 200 and "webhook_secrets" not in again
        await add_events(pool, api.creds.app_id, [ev("message.new", None, i) for i in range(3)])
        start_worker()
        await await_for(lambda: _count(receiver, 3), timeout=30)
        await await_for(lambda: _count(other, 3), timeout=30)
        sdk = StreamChat(api.creds.api_key, api.creds.api_secret)
        for r, secret, wrong in ((receiver, secrets["webhook_url"], secrets["hook:h1"]),
                                 (other, secrets["hook:h1"], secrets["webhook_url"])):
            for g in r.got:
                h = _headers(g)
                assert Webhook(secret).verify(g["body"], h)["type"] == "message.new"
                assert verify_standard(g["body"], h, secret)
                with pytest.raises(WebhookVerificationError):
                    Webhook(wrong).verify(g["body"], h)
                with pytest.raises(WebhookVerificationError):
                    Webhook(secret).verify(g["body"] + b" ", h)
                assert h["webhook-id"] == h["x-webhook-id"]
                assert abs(int(h["webhook-timestamp"]) - time.time()) < 60
                assert sdk.verify_webhook(g["body"], h["x-signature"])  # the compatible one too
    finally:
        await other.stop()


async def test_replayed_request_is_refused_by_its_timestamp(api: Api, pool, receiver, start_worker):
    st, body = await api.patch("/app", {"webhook_url": receiver.url})
    secret = body["webhook_secrets"]["webhook_url"]
    await add_events(pool, api.creds.app_id, [ev("message.new", None, 1)])
    start_worker()
    await await_for(lambda: _count(receiver, 1), timeout=30)
    g = receiver.got[0]
    h = _headers(g)
    ts = int(h["webhook-timestamp"])
    assert verify_standard(g["body"], h, secret)
    # the same request captured and sent again ten minutes later
    assert not verify_standard(g["body"], h, secret, now=ts + 600)
    # re-stamping it does not help without the secret: the timestamp is signed
    restamped = {**h, "webhook-timestamp": str(ts + 5)}  # within tolerance, but not what was signed
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(g["body"], restamped)
    assert not verify_standard(g["body"], restamped, secret)
    # an old timestamp with a valid signature for it: refused by the package as well
    old = ts - 600
    forged = {**h, "webhook-timestamp": str(old),
              "webhook-signature": sign_standard(h["webhook-id"], old, g["body"], secret)}
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(g["body"], forged)


async def test_rotation_overlap_sends_both_signatures(api: Api, pool, receiver, start_worker):
    st, body = await api.patch("/app", {"event_hooks": [{"id": "h", "webhook_url": receiver.url}]})
    old = body["webhook_secrets"]["hook:h"]
    st, rot = await api.post("/webhooks/secrets/rotate", {"receiver": "h", "overlap_seconds": 3600})
    assert st == 200, rot
    new = rot["secret"]
    assert new.startswith("whsec_") and new != old and rot["receiver"] == "hook:h"
    assert rot["previous_expires_at"]
    start_worker()
    await add_events(pool, api.creds.app_id, [ev("message.new", None, 1)])
    await await_for(lambda: _count(receiver, 1), timeout=30)
    h = _headers(receiver.got[0])
    assert len(h["webhook-signature"].split(" ")) == 2
    for s in (old, new):  # a receiver still on the old secret and one already on the new
        Webhook(s).verify(receiver.got[0]["body"], h)
    # rotate again without overlap: only the newest signs
    st, rot2 = await api.post("/webhooks/secrets/rotate", {"receiver": "hook:h", "overlap_seconds": 0})
    assert st == 200 and rot2["previous_expires_at"] is None
    # the worker picks the rotation up within its settings refresh (about a second): send
    # events until one is signed once, then that one signature is the newest secret's
    single = None
    for i in range(40):
        await add_events(pool, api.creds.app_id, [ev("message.new", None, 10 + i)])
        await await_for(lambda n=i + 2: _count(receiver, n), timeout=30)
        g = receiver.got[-1]
        if len(_headers(g)["webhook-signature"].split(" ")) == 1:
            single = g
            break
    assert single is not None
    Webhook(rot2["secret"]).verify(single["body"], _headers(single))
    for s in (old, new):
        with pytest.raises(WebhookVerificationError):
            Webhook(s).verify(single["body"], _headers(single))


async def test_rotate_bad_input(api: Api):
    await api.patch("/app", {"webhook_url": "http://127.0.0.1:9/hook"})
    st, body = await api.post("/webhooks/secrets/rotate", {"receiver": "nope"})
    assert_error(st, body, 400, 4, "receiver", "nope")
    st, body = await api.post("/webhooks/secrets/rotate", {"receiver": "webhook_url", "overlap_seconds": -1})
    assert_error(st, body, 400, 4, "overlap_seconds")
    st, body = await api.post("/webhooks/secrets/rotate", {})
    assert_error(st, body, 400, 4, "receiver")


async def _count(r: Receiver, n: int) -> bool:
    return len(r.got) >= n

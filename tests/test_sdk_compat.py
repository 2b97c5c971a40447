"""The official `stream-chat` Python SDK against a live broadcaster, unchanged but for the URL."""

from __future__ import annotations

from typing import Any

import pytest
from stream_chat import StreamChat
from stream_chat.base.exceptions import StreamAPIException

from tests.helpers import Creds, LiveServer


def test_sdk_drives_users_channels_and_messages(sdk: Any) -> None:
    sdk.upsert_users([
        {"id": "sender", "name": "Shop", "role": "admin"},
        {"id": "nl-1", "name": "Anna", "plan": "gold", "address": {"country": "NL", "city": "Delft"}},
        {"id": "nl-2", "name": "Bram", "plan": "free", "address": {"country": "NL"}},
        {"id": "de-1", "name": "Carl", "plan": "gold", "address": {"country": "DE"}},
    ])
    gold = sdk.query_users({"plan": "gold"}, {"id": 1})
    assert [u["id"] for u in gold["users"]] == ["de-1", "nl-1"]
    dutch = sdk.query_users({"address.country": "NL"}, [{"field": "name", "direction": -1}], limit=10)
    assert [u["id"] for u in dutch["users"]] == ["nl-2", "nl-1"]
    assert dutch["users"][1]["address"] == {"country": "NL", "city": "Delft"}
    sdk.update_user_partial({"id": "nl-2", "set": {"plan": "gold"}, "unset": ["address"]})
    assert sdk.query_users({"plan": "gold", "address.country": {"$exists": False}})["users"][0]["id"] == "nl-2"

    channel = sdk.channel("messaging", "promo", {"members": ["sender", "nl-1"], "season": "spring"})
    created = channel.create("sender")
    assert created["channel"]["cid"] == "messaging:promo" and created["channel"]["season"] == "spring"
    assert created["channel"]["member_count"] == 2

    sent = channel.send_message({"text": "Hello Anna", "campaign_hint": "x"}, "sender")
    assert sent["message"]["text"] == "Hello Anna" and sent["message"]["user"]["id"] == "sender"

    state = channel.query(messages={"limit": 10})
    assert [m["id"] for m in state["messages"]] == [sent["message"]["id"]]
    assert state["messages"][0]["campaign_hint"] == "x"
    channel.mark_read("nl-1")

    distinct = sdk.channel("messaging", data={"members": ["sender", "de-1"]})
    distinct.create("sender")
    assert distinct.id.startswith("!members-")

    found = sdk.query_channels({"members": {"$in": ["nl-1"]}}, {"created_at": -1})
    assert [c["channel"]["cid"] for c in found["channels"]] == ["messaging:promo"]
    assert found["channels"][0]["read"][0]["user"]["id"] == "nl-1"

    deleted = sdk.delete_channels(["messaging:promo"])
    assert deleted["task_id"]
    assert sdk.query_channels({"members": {"$in": ["nl-1"]}})["channels"] == []
    assert sdk.delete_users(["de-1"], "hard")["task_id"]
    sdk.delete_user("nl-2")
    assert [u["id"] for u in sdk.query_users({"id": {"$in": ["de-1", "nl-2", "nl-1"]}})["users"]] == ["nl-1"]


def test_sdk_sees_bad_input_as_code_4(sdk: Any) -> None:
    with pytest.raises(StreamAPIException) as e:
        sdk.query_users({"name": {"$regex": "x"}})
    assert e.value.status_code == 400 and e.value.error_code == 4
    assert "filter_conditions.name.$regex" in e.value.error_message


def test_sdk_auth_errors(live_server: LiveServer, sync_creds: Creds) -> None:
    wrong_secret = StreamChat(sync_creds.api_key, "not-the-secret-of-this-app-0123456789abcdef", base_url=live_server.url, timeout=30)
    with pytest.raises(StreamAPIException) as e:
        wrong_secret.query_users({})
    assert e.value.status_code == 401 and e.value.error_code == 43

    unknown_key = StreamChat("no-such-key", sync_creds.api_secret, base_url=live_server.url, timeout=30)
    with pytest.raises(StreamAPIException) as e:
        unknown_key.upsert_user({"id": "x"})
    assert e.value.status_code == 401 and e.value.error_code == 2

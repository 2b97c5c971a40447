"""Operator ceilings (SPEC 8): BROADCASTER_MAX_RATE_LIMIT_PER_MIN and BROADCASTER_MAX_SEND_RATE
bound what PATCH /app accepts and what is in force."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from broadcaster.app import create_app
from broadcaster.appconfig import capped
from broadcaster.settings import Settings
from tests.helpers import Api, Creds, assert_error


@pytest.fixture
async def capped_api(aiohttp_client: Callable[..., Any], settings: Settings, creds: Creds) -> Api:
    client = await aiohttp_client(create_app(settings.with_(max_rate_limit_per_min=5000, max_send_rate=100)))
    return Api(client, creds)


@pytest.mark.parametrize(("patch", "words"), [
    ({"rate_limits": {"default": 0}}, ["rate_limits.default", "0 (unlimited)", "5000", "BROADCASTER_MAX_RATE_LIMIT_PER_MIN"]),
    ({"rate_limits": {"QueryUsers": 10**12}}, ["rate_limits.QueryUsers", "at most 5000", "BROADCASTER_MAX_RATE_LIMIT_PER_MIN"]),
    ({"rate_limits": {"default": 100, "UpsertUsers": 5001}}, ["rate_limits.UpsertUsers", "at most 5000"]),
    ({"campaign_send_rate": 0}, ["campaign_send_rate", "0 (unlimited)", "100", "BROADCASTER_MAX_SEND_RATE"]),
    ({"campaign_send_rate": 100.5}, ["campaign_send_rate", "at most 100", "BROADCASTER_MAX_SEND_RATE"]),
    ({"campaign_send_rate": 1e12, "rate_limits": {"default": 10}}, ["campaign_send_rate"]),
])
async def test_ceilings_refuse_what_exceeds_them(capped_api: Api, patch: dict[str, Any], words: list[str]) -> None:
    st, before = await capped_api.get("/app")
    assert st == 200, before
    st, body = await capped_api.patch("/app", patch)
    assert_error(st, body, 400, 4, *words)
    st, after = await capped_api.get("/app")
    assert after["app"] == before["app"]  # nothing half-applied


async def test_tenants_lower_their_limits_under_a_ceiling(capped_api: Api) -> None:
    st, body = await capped_api.patch("/app", {"rate_limits": {"default": 300, "QueryUsers": 5000},
                                               "campaign_send_rate": 100})
    assert st == 200, body
    st, body = await capped_api.get("/app")
    assert body["app"]["rate_limits"] == {"default": 300, "QueryUsers": 5000}
    assert body["app"]["campaign_send_rate"] == 100
    st, body = await capped_api.get("/rate_limits", params={"endpoints": "QueryUsers,UpsertUsers"})
    assert st == 200, body
    assert body["server_side"]["QueryUsers"]["limit"] == 5000 and body["server_side"]["UpsertUsers"]["limit"] == 300


async def test_defaults_and_old_values_are_held_under_the_ceiling(capped_api: Api, pool: Any, creds: Creds) -> None:
    """Reads default to 10,000/min and a value stored before the ceiling may be 0: in force is 5,000."""
    await pool.execute("UPDATE apps SET settings = settings || '{\"rate_limits\": {\"UpsertUsers\": 0}}'::jsonb"
                       " WHERE id = $1", creds.app_id)
    st, body = await capped_api.get("/rate_limits", params={"endpoints": "QueryUsers,UpsertUsers"})
    assert st == 200, body
    assert body["server_side"]["QueryUsers"]["limit"] == 5000
    assert body["server_side"]["UpsertUsers"]["limit"] == 5000
    await capped_api.get("/users", params={"payload": "{}"})
    assert capped_api.last_headers["X-RateLimit-Limit"] == "5000"


async def test_no_ceiling_keeps_unlimited(api: Api) -> None:
    st, body = await api.patch("/app", {"rate_limits": {"default": 0, "QueryUsers": 10**12}, "campaign_send_rate": 0})
    assert st == 200, body


def test_capped() -> None:
    assert capped(0, 100) == 100 and capped(500, 100) == 100 and capped(50, 100) == 50
    assert capped(0, 0) == 0 and capped(10**12, 0) == 10**12

"""API rate limits: budgets per app and operation in Redis, headers, 429, shared across API
processes, changed at once, fail open without Redis; the campaign send rate bucket."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from redis.asyncio import Redis

from broadcaster import devstack, metrics, ratelimit, sendrate
from broadcaster.app import create_app
from tests.conftest import RUN_DIR
from tests.helpers import Api, assert_error


def rl_headers(api: Api) -> tuple[int, int, int]:
    h = api.last_headers
    return int(h["X-RateLimit-Limit"]), int(h["X-RateLimit-Remaining"]), int(h["X-RateLimit-Reset"])


async def test_budget_counts_down_then_429_with_headers(api: Api):
    st, body = await api.patch("/app", {"rate_limits": {"GetApp": 5}})
    assert st == 200, body
    assert rl_headers(api)[0] == 1000  # UpdateApp: a write, default 1,000/min
    seen = []
    for _ in range(5):
        st, body = await api.get("/app")
        assert st == 200, body
        seen.append(rl_headers(api))
    assert [s[1] for s in seen] == [4, 3, 2, 1, 0]
    assert all(s[0] == 5 for s in seen)
    assert all(s[2] >= int(time.time()) for s in seen)
    st, body = await api.get("/app")
    assert_error(st, body, 429, 9, "GetApp")
    limit, remaining, reset = rl_headers(api)
    assert (limit, remaining) == (5, 0) and reset > time.time()
    assert 1 <= int(api.last_headers["Retry-After"]) <= 12
    # another operation keeps its own budget; GET /rate_limits reports both
    st, body = await api.get("/rate_limits")
    assert st == 200, body
    sides = body["server_side"]
    assert sides["GetApp"]["limit"] == 5 and sides["GetApp"]["remaining"] == 0
    assert sides["GetRateLimits"] == {**sides["GetRateLimits"], "limit": 10_000, "remaining": 9_999}
    # the budget refills evenly (one UpdateApp every 60 ms), so the PATCH may be refilled already
    assert sides["UpdateApp"]["limit"] == 1000 and sides["UpdateApp"]["remaining"] in (999, 1000)
    assert "Healthz" not in sides and "Metrics" not in sides
    assert api.last_headers["X-RateLimit-Limit"] == "10000"


async def test_defaults_by_operation_kind():
    assert ratelimit.limit_for({}, "QueryUsers") == 10_000
    assert ratelimit.limit_for({}, "SegmentTargetExists") == 10_000
    assert ratelimit.limit_for({}, "AddSegmentTargets") == 10_000
    assert ratelimit.limit_for({}, "StartCampaign") == 1_000
    s = {"rate_limits": {"default": 50, "QueryUsers": 7}}
    assert ratelimit.limit_for(s, "QueryUsers") == 7
    assert ratelimit.limit_for(s, "GetApp") == 50


async def test_changed_limit_applies_at_once(api: Api):
    await api.patch("/app", {"rate_limits": {"GetApp": 2}})
    for _ in range(2):
        st, _ = await api.get("/app")
        assert st == 200
    st, body = await api.get("/app")
    assert st == 429
    await api.patch("/app", {"rate_limits": {"GetApp": 4}})
    st, body = await api.get("/app")
    assert st == 200, body
    assert rl_headers(api)[:2] == (4, 1)
    await api.patch("/app", {"rate_limits": {"GetApp": 0}})  # 0 = unlimited
    st, body = await api.get("/app")
    assert st == 200 and "X-RateLimit-Limit" not in api.last_headers
    st, body = await api.get("/rate_limits", params={"endpoints": "GetApp,QueryUsers"})
    assert set(body["server_side"]) == {"GetApp", "QueryUsers"}
    assert body["server_side"]["GetApp"]["unlimited"] is True


async def test_budget_is_per_app(api: Api, other_api: Api):
    await api.patch("/app", {"rate_limits": {"GetApp": 1}})
    assert (await api.get("/app"))[0] == 200
    assert (await api.get("/app"))[0] == 429
    assert (await other_api.get("/app"))[0] == 200


async def test_two_api_processes_share_one_budget(api: Api, settings, aiohttp_client, creds):
    second = Api(await aiohttp_client(create_app(settings)), creds)
    await api.patch("/app", {"rate_limits": {"GetApp": 4}})
    statuses = []
    for caller in (api, second, api, second, api, second):
        st, _ = await caller.get("/app")
        statuses.append(st)
    assert statuses == [200, 200, 200, 200, 429, 429]


async def test_errors_of_limited_endpoints_carry_headers(api: Api):
    st, body = await api.get("/segments/nope")
    assert st == 404
    assert "X-RateLimit-Remaining" in api.last_headers


async def test_redis_down_requests_still_served(settings, aiohttp_client, creds):
    own = devstack.start_redis(RUN_DIR / f"redis-{uuid.uuid4().hex[:6]}")
    try:
        api = Api(await aiohttp_client(create_app(settings.with_(redis_url=own.url))), creds)
        st, body = await api.get("/app")
        assert st == 200 and "X-RateLimit-Remaining" in api.last_headers
        before = metrics.RATE_LIMIT_FAIL_OPEN._value.get()
        own.stop()
        for _ in range(3):
            st, body = await api.get("/app")
            assert st == 200, body
            assert "X-RateLimit-Remaining" not in api.last_headers
        assert metrics.RATE_LIMIT_FAIL_OPEN._value.get() >= before + 3
    finally:
        own.stop()
        ratelimit._State.open_until = 0.0


async def test_send_rate_is_shared_by_all_clients(settings):
    """Two workers' clients reserving from one app's bucket never exceed the rate together."""
    a, b = Redis.from_url(settings.redis_url), Redis.from_url(settings.redis_url)
    try:
        rate, n = 100.0, 10
        waits = await asyncio.gather(*(sendrate.reserve(c, 7, rate, n) for c in (a, b) * 5))
        # 10 batches of 10 at 100/s: the last one may start no sooner than 0.9 s from now
        assert max(waits) >= (10 * n - n) / rate - 0.05
        assert sorted(round(w, 1) for w in waits) == [round(i * n / rate, 1) for i in range(10)]
        assert await sendrate.reserve(a, 8, 0, 1000) == 0.0  # 0 = unlimited
    finally:
        await a.aclose()
        await b.aclose()


@pytest.mark.parametrize("limit", [1, 3])
async def test_check_script_directly(settings, limit):
    r = Redis.from_url(settings.redis_url)
    try:
        got = [await ratelimit.check(r, 99, f"Op{limit}", limit) for _ in range(limit + 1)]
        assert [v.allowed for v in got] == [True] * limit + [False]
        assert [v.remaining for v in got] == [*range(limit - 1, -1, -1), 0]
        assert got[-1].retry_after_s >= 1
    finally:
        await r.aclose()


def test_sdk_reads_limits_and_headers(sdk):
    r = sdk.get_rate_limits(server_side=True, endpoints=["QueryUsers", "GetRateLimits"])
    assert set(r["server_side"]) == {"QueryUsers", "GetRateLimits"}
    assert r["server_side"]["QueryUsers"]["limit"] == 10_000
    info = r.rate_limit()
    assert info.limit == 10_000 and info.remaining == 9_999 and info.reset.timestamp() > time.time()

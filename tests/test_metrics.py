"""/metrics on the API and on a worker process: counters move when things happen."""

from __future__ import annotations

import asyncio

import aiohttp
from arq import create_pool
from prometheus_client.parser import text_string_to_metric_families

from broadcaster.app import redis_settings
from broadcaster.devstack import free_port
from broadcaster.store import outbox
from tests.helpers import Api, await_for


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample (0 when the series does not exist yet)."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return 0.0


async def scrape(client) -> str:
    r = await client.get("/metrics")
    assert r.status == 200
    assert r.headers["Content-Type"].startswith("text/plain")
    return await r.text()


async def test_http_counters_and_latency_move_after_requests(api: Api):
    before = await scrape(api.client)
    for _ in range(3):
        st, _ = await api.get("/app")
        assert st == 200
    r = await api.client.get("/app")  # no credentials: a 401
    assert r.status == 401
    after = await scrape(api.client)
    req = "broadcaster_http_requests_total"
    assert sample(after, req, operation="GetApp", status="200") - \
        sample(before, req, operation="GetApp", status="200") == 3
    assert sample(after, req, operation="GetApp", status="401") - \
        sample(before, req, operation="GetApp", status="401") == 1
    lat = "broadcaster_http_request_seconds_count"
    assert sample(after, lat, operation="GetApp") - sample(before, lat, operation="GetApp") == 4
    # Scrapes do not count themselves; unknown paths are grouped, not one series per path.
    assert sample(after, req, operation="Metrics", status="200") == 0
    await api.get("/no/such/path/123")
    assert sample(await scrape(api.client), req, operation="unmatched", status="404") >= 1


async def test_metrics_list_every_documented_family(client):
    text = await scrape(client)
    names = {f.name for f in text_string_to_metric_families(text)}
    for name in ("broadcaster_http_requests", "broadcaster_http_request_seconds",
                 "broadcaster_rate_limited", "broadcaster_jobs", "broadcaster_job_seconds",
                 "broadcaster_campaign_messages", "broadcaster_channels_created",
                 "broadcaster_webhook_deliveries", "broadcaster_webhook_delivery_seconds",
                 "broadcaster_outbox_depth"):
        assert name in names, name


async def test_outbox_depth_is_measured_at_scrape_time(client, creds, pool):
    async with pool.acquire() as conn:
        await outbox.add_many(conn, creds.app_id, "c1", [
            ("campaign.started", {"type": "campaign.started"}),
            ("campaign.completed", {"type": "campaign.completed"})])
        total = await conn.fetchval("SELECT count(*) FROM outbox")
    assert sample(await scrape(client), "broadcaster_outbox_depth") == total


async def test_worker_serves_its_own_metrics_with_jobs_by_function(settings, start_worker,
                                                                   monkeypatch):
    port = free_port()
    monkeypatch.setenv("BROADCASTER_WORKER_METRICS_PORT", str(port))
    start_worker()
    redis = await create_pool(redis_settings(settings), default_queue_name=settings.queue_name)
    try:
        for i in range(3):
            await redis.enqueue_job("ping", _job_id=f"metrics-ping-{i}")
    finally:
        await redis.aclose()

    async with aiohttp.ClientSession() as http:
        async def pings_counted() -> float:
            try:
                async with http.get(f"http://127.0.0.1:{port}/metrics") as r:
                    text = await r.text()
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
                return 0.0
            return sample(text, "broadcaster_jobs_total", function="ping", outcome="ok") >= 3 \
                and sample(text, "broadcaster_job_seconds_count", function="ping") >= 3

        assert await await_for(pings_counted, timeout=60)

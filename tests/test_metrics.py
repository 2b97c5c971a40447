"""/metrics on the API and on a worker process: counters move when things happen."""

from __future__ import annotations

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

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


async def test_rate_limited_requests_are_counted(api: Api):
    st, body = await api.patch("/app", {"rate_limits": {"GetApp": 1}})
    assert st == 200, body
    before = sample(await scrape(api.client), "broadcaster_rate_limited_total", operation="GetApp")
    statuses = [(await api.get("/app"))[0] for _ in range(2)]
    assert statuses == [200, 429]
    after = sample(await scrape(api.client), "broadcaster_rate_limited_total", operation="GetApp")
    assert after - before == 1


async def test_worker_metrics_after_a_small_campaign(api: Api, start_worker):
    port = free_port()
    start_worker(worker_metrics_port=port)
    st, body = await api.post("/users", {"users": {i: {"id": i, "name": i} for i in
                                                   ("boss", "u1", "u2", "u3")}})
    assert st in (200, 201), body
    st, body = await api.post("/campaigns", {
        "id": "m1", "sender_id": "boss", "user_ids": ["u1", "u2", "u3", "ghost"],
        "message_template": {"text": "Hi {{ receiver.name }}"}, "create_channels": True,
        "channel_template": {"type": "messaging"}, "skip_webhook": True})
    assert st in (200, 201), body
    st, body = await api.post("/campaigns/m1/start")
    assert st == 200, body

    async def completed() -> bool:
        st, body = await api.get("/campaigns/m1")
        return st == 200 and body["campaign"]["status"] == "completed"

    await await_for(completed, timeout=60)
    async with aiohttp.ClientSession() as http:
        async def worker_text() -> str:
            try:
                async with http.get(f"http://127.0.0.1:{port}/metrics") as r:
                    return await r.text()
            except aiohttp.ClientError:
                return ""

        async def counted() -> str:
            # The counters move right after the batch commits: poll, do not race.
            text = await worker_text()
            done = (sample(text, "broadcaster_campaign_messages_total", status="sent") >= 3
                    and sample(text, "broadcaster_campaign_messages_total", status="skipped") >= 1
                    and sample(text, "broadcaster_channels_created_total") >= 3)
            return text if done else ""

        text = await await_for(counted, timeout=30)
        # This worker process is fresh, so its counters are exactly this campaign's.
        msgs = "broadcaster_campaign_messages_total"
        assert sample(text, msgs, status="sent") == 3
        assert sample(text, msgs, status="skipped") == 1  # ghost: user_not_found
        assert sample(text, msgs, status="errored") == 0
        assert sample(text, "broadcaster_channels_created_total") == 3
        assert sample(text, "broadcaster_jobs_total", function="campaign_batch", outcome="ok") >= 1
        assert sample(text, "broadcaster_job_seconds_count", function="campaign_batch") >= 1
    api_text = await scrape(api.client)
    assert sample(api_text, "broadcaster_http_requests_total", operation="StartCampaign",
                  status="200") >= 1

"""Retention: failed deliveries older than BROADCASTER_WEBHOOK_RETENTION_DAYS are purged by the
worker's webhooks_purge job in small batches; newer failures and pending deliveries stay."""

from __future__ import annotations

from broadcaster.store import deliveries
from broadcaster.webhooks import dispatch
from tests.helpers import Api, await_for
from tests.test_webhook_delivery import Receiver, add_events, ev


async def _failed_rows(api: Api, pool, n: int, age_days: float, first: int = 0) -> None:
    """n deliveries routed to the app's receiver and ended as failed age_days ago."""
    await add_events(pool, api.creds.app_id, [ev("message.new", None, first + i) for i in range(n)])
    await dispatch.route(pool)
    await pool.execute(
        "UPDATE webhook_deliveries SET state = 'failed', last_error = 'http_400', last_status = 400,"
        " failed_at = now() - make_interval(days => $1::int), attempt = 1 WHERE state = 'pending'",
        int(age_days))


async def test_purge_in_small_batches_keeps_the_recent(api: Api, pool):
    await api.patch("/app", {"webhook_url": "http://127.0.0.1:9/hook"})
    await _failed_rows(api, pool, 250, 8)
    await _failed_rows(api, pool, 20, 1, first=1000)
    assert [await deliveries.purge_failed(pool, 7 * 86400, 100) for _ in range(4)] == [100, 100, 50, 0]
    left = await pool.fetch("SELECT failed_at > now() - interval '2 days' AS recent FROM webhook_deliveries")
    assert len(left) == 20 and all(r["recent"] for r in left)
    st, body = await api.get("/webhooks/failed")
    assert st == 200 and len(body["webhooks"]) == 20


async def test_worker_purges_old_failures_and_delivers_the_rest(api: Api, pool, start_worker):
    recv = await Receiver().start()
    try:
        await api.patch("/app", {"webhook_url": recv.url})
        await _failed_rows(api, pool, 1500, 10)  # more than one purge batch
        await _failed_rows(api, pool, 5, 3, first=5000)
        await add_events(pool, api.creds.app_id, [ev("message.new", None, 9000 + i) for i in range(50)])
        start_worker(webhook_retention_days=7.0)

        async def purged() -> bool:
            return await pool.fetchval("SELECT count(*) FROM webhook_deliveries WHERE state = 'failed'") == 5

        await await_for(purged, timeout=60)
        await await_for(lambda: _count(recv, 50), timeout=30)
        assert sorted(g["event"]["n"] for g in recv.got) == list(range(9000, 9050))
        ages = await pool.fetch("SELECT failed_at > now() - interval '4 days' AS kept FROM webhook_deliveries"
                                " WHERE state = 'failed'")
        assert all(r["kept"] for r in ages)
    finally:
        await recv.stop()


async def _count(r: Receiver, n: int) -> bool:
    return len(r.got) >= n

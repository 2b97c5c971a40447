"""A receiver down for 5 minutes (issue 13, real time, no fake clock: marked slow, still run
by default): the sender probes it, one request at a time with backoff, making a bounded
number of requests while it is down; once it is back everything arrives once, in order per
campaign."""

from __future__ import annotations

import asyncio
import time

import pytest

from broadcaster.webhooks import adapt
from tests.helpers import Api, await_for
from tests.test_webhook_delivery import Receiver, add_events, ev


@pytest.mark.slow
async def test_down_receiver_is_probed_then_drained_in_order(api: Api, pool, start_worker) -> None:
    """Down for the issue's 5 minutes, in real time: probes back off to one every
    adapt.PROBE_CAP_S, so the sender makes a bounded number of requests while it is down."""
    down = Receiver()  # not listening: connection refused
    await api.patch("/app", {"webhook_url": down.url, "webhook_rate_limit": 0})
    n = 200
    await add_events(pool, api.creds.app_id, [ev("campaign.started", "c1"),
                                              *(ev("message.new", "c1", i) for i in range(n)),
                                              ev("campaign.completed", "c1")])
    start_worker()
    outage_s = 300.0

    async def tried() -> bool:
        return bool(await pool.fetchval("SELECT count(*) FROM webhook_deliveries WHERE attempt >= 1"))

    await await_for(tried, timeout=30)
    t0 = time.monotonic()
    await asyncio.sleep(outage_s)  # the outage itself, not a wait for a condition
    requests_while_down = await pool.fetchval("SELECT sum(attempt) FROM webhook_deliveries")
    elapsed = time.monotonic() - t0
    # slow start's first window and DOWN_AFTER failures, then one probe per backoff step
    # (1, 2, 4, 8, 15, 15, ... s); two pumps may each probe
    bound = 2 * (adapt.DOWN_AFTER + 2 + 5 + int(elapsed / adapt.PROBE_CAP_S) + 1)
    assert requests_while_down <= bound, (requests_while_down, bound)
    await down.start()
    try:
        await await_for(lambda: _ids(down, n + 2), timeout=60, interval=0.1)
        kinds = [g["event"]["type"] for g in down.got]
        assert kinds[0] == "campaign.started" and kinds[-1] == "campaign.completed"
        assert sorted(g["event"]["n"] for g in down.got[1:-1]) == list(range(n))
        assert len(down.got) == n + 2  # each once
    finally:
        await down.stop()




async def _ids(r: Receiver, n: int) -> bool:
    return len(r.ids()) >= n

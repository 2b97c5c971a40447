"""campaign_send_rate (SPEC 8) paces a campaign across workers; a batch that must wait for
its app's rate is deferred, never holding a worker slot while it waits."""

from __future__ import annotations

import time

import pytest

from broadcaster.settings import Settings
from tests.helpers import Api
from tests.test_webhooks import make_users, run_campaign


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # The process that starts a campaign fixes its batches: the API here, in batches of 5.
    return settings.with_(batch_size=5)


async def test_campaign_send_rate_takes_at_least_n_over_r(api: Api, start_worker):
    ids = [f"u{i:02d}" for i in range(30)]
    await make_users(api, "boss", *ids)
    await api.patch("/app", {"campaign_send_rate": 15})
    start_worker()
    t0 = time.monotonic()
    done = await run_campaign(api, "slow", ids)
    # the first batch goes at once; the other 25 messages need 25/15 s at least
    assert time.monotonic() - t0 >= 25 / 15
    assert done["stats"]["stats_messages_sent"] == 30

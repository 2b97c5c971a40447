"""Webhook delivery jobs: a cron tick every second runs the dispatcher's pump when a pump
slot is free; the pump drains while work remains, so no event waits more than about a second
and a killed worker's slot and claimed deliveries are taken over by the others."""

from __future__ import annotations

from typing import Any

from arq.cron import cron
from arq.worker import func

from broadcaster.webhooks import dispatch


async def webhooks_pump(ctx: dict[str, Any]) -> int:
    return await dispatch.pump(ctx)


FUNCTIONS = [func(webhooks_pump, timeout=dispatch.PUMP_SECONDS + 60, max_tries=1)]
CRON = [
    cron(webhooks_pump, name="webhooks_tick", second=set(range(60)), run_at_startup=True,
         timeout=dispatch.PUMP_SECONDS + 60),
]

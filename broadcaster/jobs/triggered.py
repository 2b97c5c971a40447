"""Triggered campaigns' jobs (SPEC 5A): matching after POST /events, deferred dispatches,
and the 1 s tick (the use cases are in services/triggers.py)."""

from __future__ import annotations

import logging
from typing import Any

from arq import cron

from broadcaster.services.triggers import dispatch, process_events
from broadcaster.store import events

logger = logging.getLogger("broadcaster.jobs.triggered")


async def trigger_events(ctx: dict[str, Any], app_id: int) -> int:
    async with ctx["pool"].acquire() as conn:
        return await process_events(conn, ctx["redis"], app_id, ctx["settings"].batch_size)


async def trigger_dispatch(ctx: dict[str, Any], app_id: int, cid: str) -> None:
    async with ctx["pool"].acquire() as conn:
        await dispatch(conn, ctx["redis"], app_id, cid, ctx["settings"].batch_size)


async def trigger_tick(ctx: dict[str, Any]) -> None:
    pool, redis, batch_size = ctx["pool"], ctx["redis"], ctx["settings"].batch_size
    async with pool.acquire() as conn:
        for app_id in await events.apps_with_pending(conn):
            try:
                await process_events(conn, redis, app_id, batch_size)
            except Exception:
                logger.exception("trigger tick: matching failed", extra={"fields": {"app": app_id}})
        for r in await events.due_campaigns(conn):
            try:
                await dispatch(conn, redis, r["app_id"], r["campaign_id"], batch_size)
            except Exception:
                logger.exception("trigger tick: dispatch failed", extra={"fields": {"campaign": r["campaign_id"]}})
        await events.purge(conn)


FUNCTIONS = [trigger_events, trigger_dispatch]
CRON = [cron(trigger_tick, second=None, unique=True, timeout=30)]

"""Triggered campaigns (SPEC 5A): start listening, match recorded events, dispatch due
triggers into the one send path (jobs/triggered.py runs them, and a 1 s tick catches
whatever a job did not: a worker killed between recording and matching, delays, busy batches).

A triggered campaign is in_progress while it listens and never completes by itself (its
audience is never `planned`: it grows by appends). Each dispatch appends the due users to
campaign_audience and adds one batch over them, enqueued as an ordinary campaign_batch job
(rate limits, fairness, leases and the lost-batch recovery of the campaign tick apply).
One open batch at a time per campaign, so a batch's range holds only its own new users;
a dispatch that finds one open leaves the triggers to that batch, whose job dispatches again
once it is done (the tick catches a batch killed before that). Retrying every 50 ms instead
let each busy dispatch start a chain of retry jobs of its own: at 500 events/s they queued
ahead of the batches and event-to-message p99 was 8.9 s (bench, 100k users, load 10-14).
"""

from __future__ import annotations

import logging
import time

import asyncpg
from arq.connections import ArqRedis

from broadcaster.domain import triggers
from broadcaster.services import campaigns as use_cases
from broadcaster.store import campaigns, events, occurrences
from broadcaster.store.ledger import Tx

logger = logging.getLogger("broadcaster.services.triggers")
EVENT_BATCH = 1000


async def start_listening(conn: Tx, row: asyncpg.Record) -> asyncpg.Record:
    """start on a triggered draft (locked FOR UPDATE): in_progress, listening, not planned."""
    return await campaigns.set_status(
        conn, row, "start", status="in_progress", event="campaign.started",
        extra_sql=", kind = 'user', started_at = now(), planned = false")


async def notify(redis: ArqRedis, app_id: int) -> None:
    """Events were recorded: match them now rather than at the next tick."""
    await redis.enqueue_job("trigger_events", app_id, _job_id=f"tev:{app_id}:{time.time_ns()}")


async def _enqueue_dispatch(redis: ArqRedis, app_id: int, cid: str, delay: float) -> None:
    await redis.enqueue_job("trigger_dispatch", app_id, cid, _defer_by=delay,
                            _job_id=f"tdis:{app_id}:{cid}:{time.time_ns()}")


async def process_events(conn: Tx, redis: ArqRedis, app_id: int, batch_size: int) -> int:
    """Match the app's unprocessed events against its listening campaigns, a set of events
    per statement per campaign, in the transaction that marks them processed."""
    matched = 0
    while True:
        hit: list[asyncpg.Record] = []
        async with conn.transaction():
            ids = await events.take_pending(conn, app_id, EVENT_BATCH)
            if not ids:
                break
            for camp in await events.listening(conn, app_id):
                n = await events.match(conn, app_id, camp, ids)
                if n:
                    matched += n
                    hit.append(camp)
            await events.mark_processed(conn, app_id, ids)
        for camp in hit:
            delay = triggers.delay_seconds(camp["delay"])
            if delay > 0:
                await _enqueue_dispatch(redis, app_id, camp["id"], delay)
            else:
                await dispatch(conn, redis, app_id, camp["id"], batch_size)
        if len(ids) < EVENT_BATCH:
            break
    return matched


async def dispatch(conn: Tx, redis: ArqRedis, app_id: int, cid: str, batch_size: int) -> None:
    """Turn the campaign's due triggers into batches, one open batch at a time for the
    campaign and its occurrences (once_per_user false: store/occurrences.py)."""
    while True:
        busy, more = False, False
        queued: list[tuple[str, int]] = []
        async with conn.transaction():
            row = await conn.fetchrow(
                "SELECT app_id, id, status, once_per_user FROM campaigns WHERE app_id = $1 AND id = $2"
                " FOR NO KEY UPDATE", app_id, cid)
            if row is None or row["status"] != "in_progress":
                return
            if await occurrences.family_busy(conn, app_id, cid):
                busy = True
            elif row["once_per_user"]:
                no, more = await events.append_due(conn, app_id, cid, batch_size, campaigns.QUEUED_LEASE_S)
                queued = [(cid, no)] if no is not None else []
            else:
                queued, more = await occurrences.append_repeated(
                    conn, await campaigns.get(conn, app_id, cid), batch_size, campaigns.QUEUED_LEASE_S)
        if busy:  # that batch dispatches again when it is done (services/batches.run)
            return
        for target, no in queued:
            await use_cases.enqueue_batch(redis, app_id, target, no, 0)
        if not more:
            return

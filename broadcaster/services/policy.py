"""Delivery policy in the send path (SPEC 5B): which of a batch's pending users are sent now,
held (local time, quiet hours deferred) or skipped (quiet_hours, frequency_capped); the
release of held recipients when they are due; the start of a local-time campaign.

Everything is decided in the batch's own transaction with set-based statements: one records
who is held; with frequency caps one claims the batch's range of user ids (a concurrent
batch sharing users waits for this one's commit) and one counts the users' sends in the
ledger, where the batch's own ledger rows then count them (capped_at). Zones are resolved in Python, once per distinct
zone name of the batch; nothing is a round trip per recipient.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from broadcaster.domain import policy
from broadcaster.domain.render import opted_out
from broadcaster.errors import bad_request
from broadcaster.store import policy as store
from broadcaster.store.campaigns import QUEUED_LEASE_S
from broadcaster.store.ledger import Conn, Tx


@dataclass
class Gate:
    """What the policy made of a batch's pending rows."""

    rows: list[asyncpg.Record]  # to render and write (not-found and opted-out ones included:
    # the renderer skips those with their own reasons)
    skipped: list[list[str | None]] = field(default_factory=list)  # ledger rows, render.Batch.other's shape
    held: int = 0
    at: datetime | None = None  # caps in force: the sent ones count at this instant


def _zone_name(r: asyncpg.Record) -> Any:
    c = r["custom"]
    return c.get("timezone") if isinstance(c, dict) else None


async def before(
    conn: Tx, camp: asyncpg.Record, settings: dict[str, Any], rows: list[asyncpg.Record],
    bounds: tuple[str | None, str], no: int,
) -> Gate:
    """Call in the batch's transaction, before rendering (user audiences). Batch `no`: one of
    the batches planned at start holds nobody yet (its range is its own, and a batch runs
    once), so only a later batch (a release, a triggered or winner batch) clears holds."""
    rules = policy.rules(camp, settings)
    fresh = bool(camp["planned"]) and camp["type"] != "triggered" and no < int(camp["plan_batches"] or 0)
    if not rules.active:
        if not fresh:  # settings removed while some were held: they go now
            await store.hold(conn, camp["app_id"], camp["id"], bounds, [])
        return Gate(rows)
    # with caps, the batch's range is claimed first, in the round trip that reads the clock:
    # a concurrent batch sharing users commits before the counts are read
    now = await (store.claim(conn, camp["app_id"], bounds) if rules.caps and rows else store.now(conn))
    # a recipient's timing depends on its zone only: decided once per distinct zone name
    zones: dict[Any, tuple[str, datetime | None, str | None]] = {}
    gate = Gate([])
    held: list[tuple[str, datetime, str]] = []
    candidates: list[asyncpg.Record] = []
    for r in rows:
        if not r["found"] or opted_out(r):
            gate.rows.append(r)
            continue
        name = _zone_name(r)
        decided = zones.get(name)
        if decided is None:
            decided = zones[name] = policy.timing(rules, policy.zone_of(name, rules.default_zone), now)
        action, until, reason = decided
        if action == "hold":
            assert until is not None and reason is not None
            held.append((r["id"], until, reason))
        elif action == "skip":
            gate.skipped.append([r["id"], r["id"], None, "skipped", reason])
        else:
            candidates.append(r)
    if held or not fresh:
        await store.hold(conn, camp["app_id"], camp["id"], bounds, held)
    gate.held = len(held)
    if rules.caps and candidates:
        out: set[str] = set()
        if rules.check_caps:
            out = await store.capped(conn, camp["app_id"], [r["id"] for r in candidates], now,
                                     [(c.max, c.period.total_seconds()) for c in rules.caps])
        gate.at = now  # the sent ones' ledger rows count at this instant (fanwrite capped_at)
        for r in candidates:
            if r["id"] in out:
                gate.skipped.append([r["id"], r["id"], None, "skipped", "frequency_capped"])
            else:
                gate.rows.append(r)
    else:
        gate.rows.extend(candidates)
    gate.rows.sort(key=lambda r: r["id"])
    return gate


async def release(conn: Tx) -> list[tuple[int, str, int]]:
    """The tick: a batch for each range with a due held recipient (one at a time per range);
    returns (app, campaign, batch number) to enqueue."""
    out = []
    for g in await store.due_ranges(conn):
        async with conn.transaction():
            no = await store.add_release_batch(conn, g["app_id"], g["campaign_id"], g["after_id"], g["upto_id"],
                                               QUEUED_LEASE_S)
        if no is not None:
            out.append((int(g["app_id"]), str(g["campaign_id"]), no))
    return out


async def local_start(
    conn: Conn, app_id: int, row: asyncpg.Record, settings: dict[str, Any], sched: datetime | None,
) -> tuple[datetime | None, datetime | None]:
    """send_in_local_time: (the instant the campaign starts: the wall-clock time in the
    earliest zone among the app's users and its default zone, the wall-clock time). The
    wall-clock time is scheduled_for's date and time in UTC."""
    if not row["send_in_local_time"]:
        return sched, None
    if sched is None:
        raise bad_request("scheduled_for is required with send_in_local_time: the wall-clock time"
                          " each recipient receives it at")
    wall = sched.replace(tzinfo=None)
    default = policy.zone_of(settings.get("default_timezone"), policy.UTC_ZONE)
    names = await store.user_zones(conn, app_id)
    zones = {default.key: default, **{n: z for n in names if (z := policy.zone_of(n, default))}}
    return policy.earliest_instant(wall, list(zones.values())), wall

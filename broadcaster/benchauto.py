"""Bench parts of issue 16 (triggered campaigns and delivery policy), run by `broadcaster
bench` against its API and workers, on the users u000000000.. it created:

- events_post: POST /events of 1,000 events, latency p50/p99 over 20 calls (a triggered
  campaign listening, half the events matching its filter);
- event_to_message: events at a sustained rate (default 500/s) to a triggered campaign with
  no delay, each to a different user; per event, from its recording (events.recorded_at) to
  its ledger row (sent_at: the start of the batch transaction that wrote the message);
- policy: the same campaign with frequency caps, quiet hours (not covering now: every check
  is paid, nobody deferred) and 1 % of users opted out, against the plain campaign run just
  after it (both into the channels an earlier run created), as a rate ratio;
- local time: the same campaign with send_in_local_time at a wall-clock time just past in
  every zone its users have (UTC, and 1 % each in Europe/Amsterdam and Asia/Tokyo): every
  recipient's timing is decided and all are due, against the same plain run.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from broadcaster.benchparts import Client, progress
from broadcaster.benchsettle import settle

Fanout = Callable[..., Awaitable[dict[str, Any]]]


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return round(s[min(len(s) - 1, int(q * len(s)))], 2) if s else 0.0


def _user(i: int) -> str:
    return f"u{i:09d}"


async def _triggered(client: Client, cid: str, event: str, flt: dict[str, Any] | None = None) -> None:
    await client.ok("POST", "/campaigns", {
        "id": cid, "type": "triggered", "trigger": {"event": event, **({"filter": flt} if flt else {})},
        "sender_id": "sender", "skip_webhook": True, "create_channels": True,
        "channel_template": {"type": "messaging"}, "message_template": {"text": "Thanks {{ receiver.name }}"}})
    await client.ok("POST", f"/campaigns/{cid}/start", {})


async def _settled(dsn: str, app_id: int, cid: str, timeout_s: float) -> bool:
    """Every event matched, no trigger pending, no batch open (polled)."""
    conn = await asyncpg.connect(dsn)
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            busy = await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM events WHERE app_id = $1 AND NOT processed)"
                " OR EXISTS (SELECT 1 FROM campaign_triggers WHERE app_id = $1 AND campaign_id = $2 AND status = 'pending')"
                " OR EXISTS (SELECT 1 FROM campaign_batches WHERE app_id = $1 AND campaign_id = $2 AND NOT done)",
                app_id, cid)
            if not busy:
                return True
            await asyncio.sleep(0.2)
        return False
    finally:
        await conn.close()


async def events_post(client: Client, dsn: str, app_id: int, n: int, calls: int = 20) -> dict[str, Any]:
    await _triggered(client, "bench-orders", "bench.order", {"data.total": {"$gte": 100}})
    lat: list[float] = []
    for c in range(calls):
        evs = [{"id": f"o{c}-{i}", "type": "bench.order", "user_id": _user((c * 1000 + i) % n),
                "data": {"total": 50 + 100 * (i % 2)}} for i in range(1000)]
        t = time.perf_counter()
        await client.ok("POST", "/events", {"events": evs})
        lat.append((time.perf_counter() - t) * 1000)
    settled = await _settled(dsn, app_id, "bench-orders", max(60.0, calls * 10.0))
    await client.ok("POST", "/campaigns/bench-orders/stop", {})
    out = {"calls": calls, "p50_ms": _pct(lat, 0.5), "p99_ms": _pct(lat, 0.99), "settled": settled}
    progress(f"POST /events x1000 {out}")
    return out


async def event_to_message(client: Client, dsn: str, app_id: int, n: int, rate: int = 500,
                           seconds: float = 10.0) -> dict[str, Any]:
    await _triggered(client, "bench-ping", "bench.ping")
    total = min(n, int(rate * seconds))  # each event to a different user (once_per_user)
    tick = 0.1
    per_tick = max(1, int(rate * tick))
    t0 = time.perf_counter()
    sent = 0
    while sent < total:
        k = min(per_tick, total - sent)
        await client.ok("POST", "/events", {"events": [
            {"id": f"p{sent + i}", "type": "bench.ping", "user_id": _user(sent + i)} for i in range(k)]})
        sent += k
        ahead = t0 + (sent / rate) - time.perf_counter()
        if ahead > 0:  # pacing the offered load, not a synchronisation
            await asyncio.sleep(ahead)
    offered = sent / (time.perf_counter() - t0)
    settled = await _settled(dsn, app_id, "bench-ping", 120.0)
    conn = await asyncpg.connect(dsn)
    try:
        # where the time goes: recorded -> matched (the trigger row's transaction) -> its
        # batch's job started (the last lease) -> the batch's transaction began (sent_at)
        rows = await conn.fetch(
            "SELECT extract(epoch FROM r.sent_at - e.recorded_at) * 1000 AS ms,"
            " extract(epoch FROM t.created_at - e.recorded_at) * 1000 AS match_ms,"
            " extract(epoch FROM b.started_at - t.created_at) * 1000 AS queue_ms,"
            " extract(epoch FROM r.sent_at - b.started_at) * 1000 AS start_ms,"
            " t.batch_no, b.n AS batch_n, b.channels_created AS created FROM campaign_triggers t"
            " JOIN events e ON e.app_id = t.app_id AND e.id = t.event_id"
            " JOIN campaign_recipients r ON r.app_id = t.app_id AND r.campaign_id = t.campaign_id"
            "  AND r.target_id = t.user_id AND r.status = 'sent'"
            " LEFT JOIN campaign_batches b ON b.app_id = t.app_id AND b.campaign_id = t.campaign_id"
            "  AND b.batch_no = t.batch_no"
            " WHERE t.app_id = $1 AND t.campaign_id = 'bench-ping'", app_id)
    finally:
        await conn.close()
    await client.ok("POST", "/campaigns/bench-ping/stop", {})
    ms = [float(r["ms"]) for r in rows]
    stages = {k: [float(r[k]) for r in rows if r[k] is not None] for k in ("match_ms", "queue_ms", "start_ms")}
    out = {"events": sent, "offered_per_s": round(offered), "messages": len(ms), "p50_ms": _pct(ms, 0.5),
           "p99_ms": _pct(ms, 0.99), "settled": settled,
           "stages_p50_p99_ms": {k: [_pct(v, 0.5), _pct(v, 0.99)] for k, v in stages.items()},
           "batches": len({r["batch_no"] for r in rows}),
           "batch_n_p50_max": [_pct([float(r["batch_n"] or 0) for r in rows], 0.5),
                               max((int(r["batch_n"] or 0) for r in rows), default=0)],
           "channels_created": sum(int(c) for c in {r["batch_no"]: r["created"] or 0 for r in rows}.values())}
    progress(f"event to message {out}")
    return out


# The part's campaign ids ascend in the order the campaigns run: the audience and the ledger
# are keyed (app_id, campaign_id, target_id), and a campaign whose id sorts before an earlier
# one's writes every row into the middle of those indexes instead of at their right edge (a
# full descent per row, half-full page splits). Named bench-pol, bench-pol-local and
# bench-pol-plain2 after bench-pol-plain, the policy and local-time runs wrote in the middle
# and the plain run they are compared with at the edge: 200k audience rows took 1.9-2.0 s
# there against 0.8-1.2 s at the edge (the same machine, one after the other).
POLICY_IDS = ("bench-pol-1-plain", "bench-pol-2-caps", "bench-pol-3-local", "bench-pol-4-plain")


async def policy(client: Client, dsn: str, app_id: int, fanout: Fanout) -> dict[str, Any]:
    # the first plain run creates the 1:1 channels when no earlier part did; the policy run,
    # the local-time run and the second plain run all send into existing channels, each once
    # autovacuum is done with the run before it; the zones are set before the first, so
    # every run reads the same users table
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "UPDATE users SET custom = custom || jsonb_build_object('timezone', CASE WHEN id LIKE 'u%01'"
            " THEN 'Europe/Amsterdam' ELSE 'Asia/Tokyo' END) WHERE app_id = $1 AND (id LIKE 'u%01' OR id LIKE 'u%02')",
            app_id)
    finally:
        await conn.close()
    first = await fanout(POLICY_IDS[0])
    now = datetime.now(UTC)
    quiet = {"start": (now + timedelta(hours=6)).strftime("%H:%M"), "end": (now + timedelta(hours=7)).strftime("%H:%M")}
    await client.ok("PATCH", "/app", {"quiet_hours": quiet, "default_timezone": "UTC",
                                      "frequency_caps": [{"max": 100, "period": "1d"}, {"max": 500, "period": "7d"}]})
    conn = await asyncpg.connect(dsn)
    opt = "UPDATE users SET custom = custom || jsonb_build_object('campaigns_opt_out', $2::boolean)"
    where = " WHERE app_id = $1 AND id LIKE 'u%00'"
    try:
        await conn.execute(opt + where, app_id, True)
        try:
            settled = {"policy": (await settle(dsn))["settle_s"]}
            pol = await fanout(POLICY_IDS[1])
        finally:
            await conn.execute(opt + where, app_id, False)
            await client.ok("PATCH", "/app", {"quiet_hours": None, "frequency_caps": None, "default_timezone": None})
    finally:
        await conn.close()
    wall = (datetime.now(UTC) - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    settled["local_time"] = (await settle(dsn))["settle_s"]
    local = await fanout(POLICY_IDS[2], extra={"send_in_local_time": True}, start={"scheduled_for": wall})
    settled["plain"] = (await settle(dsn))["settle_s"]
    plain = await fanout(POLICY_IDS[3])
    out = {"first_plain_recipients_per_s": round(first["recipients_per_s"]),
           "plain_recipients_per_s": round(plain["recipients_per_s"]),
           "policy_recipients_per_s": round(pol["recipients_per_s"]),
           "ratio": round(pol["recipients_per_s"] / plain["recipients_per_s"], 3),
           "local_time_recipients_per_s": round(local["recipients_per_s"]),
           "local_time_ratio": round(local["recipients_per_s"] / plain["recipients_per_s"], 3),
           # the start calls' own time is in each rate: their spread is the part's noise
           "start_call_s": {k: r.get("start_call_s") for k, r in
                            (("first_plain", first), ("policy", pol), ("local_time", local), ("plain", plain))},
           "settle_s": settled}
    progress(f"caps + quiet hours + opt-out vs plain {out}")
    return out


async def run(client: Client, dsn: str, app_id: int, n: int, fanout: Fanout) -> dict[str, Any]:
    return {
        "events_post_1000": await events_post(client, dsn, app_id, n),
        "event_to_message": await event_to_message(client, dsn, app_id, n),
        "policy": await policy(client, dsn, app_id, fanout),
    }

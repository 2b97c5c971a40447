"""`broadcaster bench`: fan-out, imports, cursors and webhooks against the PostgreSQL ceiling.

Self-contained: uses BROADCASTER_DATABASE_URL / BROADCASTER_REDIS_URL when set, else starts
embedded servers; starts its own API process and W worker processes; creates a fresh app;
prints progress on stderr and one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from broadcaster import benchauto, benchfunnel, benchsettle, benchsetup, devstack
from broadcaster.benchfan import fanout as fanout_run
from broadcaster.benchfan import plot, targets_query
from broadcaster.benchhooks import plain_receiver_run, sink_run
from broadcaster.benchparts import CEILING_KEYS, Client, RssSampler, Sink, ceiling, progress
from broadcaster.benchwhere import Where, disk, lsn, pids
from broadcaster.plainreceiver import PlainReceiver
from broadcaster.store import apps


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recipients", type=int, default=1_000_000, help="audience size (default 1M)")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--batch-size", type=int, default=0, help="recipients per fan-out batch")
    p.add_argument("--json", dest="json_path", default=None, help="also write the result here")
    p.add_argument("--plot", default=None, help="write a PNG of messages sent over time")
    p.add_argument("--data-dir", default=".broadcaster/bench", help="embedded servers' data")
    p.add_argument("--where", action="store_true",
                   help="profile the fan-out: statements and waits sampled, CPU per process")
    p.add_argument("--only", default=None, help=f"comma-separated parts to run (default all): {','.join(PARTS)}")


def run(args: argparse.Namespace) -> int:
    result = asyncio.run(_main(args))
    text = orjson.dumps(result, option=orjson.OPT_INDENT_2).decode()
    print(text, flush=True)
    if args.json_path:
        Path(args.json_path).write_text(text + "\n")
    return 0


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    n = args.recipients
    base = Path(args.data_dir).resolve() / str(os.getpid())
    procs: list[subprocess.Popen[bytes]] = []
    sink = await Sink().start()
    try:
        async with devstack.servers(base, "bench") as (dsn, redis_url):
            try:
                return await _run(args, n, dsn, redis_url, sink, procs)
            finally:  # our API and workers go before the servers they use
                devstack.stop_processes(procs)
    finally:
        await sink.stop()


async def _run(args: argparse.Namespace, n: int, dsn: str, redis_url: str, sink: Sink,
               procs: list[subprocess.Popen[bytes]]) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    app = await apps.create(conn, f"bench-{int(time.time())}")
    machine = {
        "cpus": os.cpu_count(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "postgres_version": await conn.fetchval("SHOW server_version"),
        "python": platform.python_version(),
    }
    await conn.close()
    port = devstack.free_port()
    env = {**os.environ, "BROADCASTER_DATABASE_URL": dsn, "BROADCASTER_REDIS_URL": redis_url,
           "BROADCASTER_PORT": str(port), "BROADCASTER_LOG_LEVEL": "WARNING",
           "BROADCASTER_QUEUE_NAME": f"bc:bench:{os.getpid()}",
           "BROADCASTER_WEBHOOK_ALLOW_PRIVATE": "1"}  # the sink listens on 127.0.0.1
    if args.batch_size:
        env["BROADCASTER_BATCH_SIZE"] = str(args.batch_size)
    procs.append(subprocess.Popen([sys.executable, "-m", "broadcaster", "serve"], env=env))
    workers = [subprocess.Popen([sys.executable, "-m", "broadcaster", "worker"], env=env)
               for _ in range(args.workers)]
    procs.extend(workers)
    client = Client(f"http://127.0.0.1:{port}", app.api_key, app.api_secret)
    try:
        await benchsetup.wait_up(client)
        machine["redis_version"] = await benchsetup.redis_version(redis_url)
        out = await _measure(client, dsn, app.id, n, workers, sink, args)
    finally:
        await client.close()
    return {"machine": machine, "recipients": n, **out}


# hooks_fanout comes last: its campaign leaves ~2 events per recipient draining to the sink
# for minutes after it completes, which would slow whatever part ran next.
PARTS = ("addtargets", "targets_query", "ceiling", "ceiling_hashed", "fanout", "second", "webhooks",
         "include", "channels", "funnel", "triggers_and_policy", "hooks_fanout")
NEEDS_FANOUT = {"second", "include", "channels", "funnel"}  # they send into the fan-out's channels


def parts(only: str | None) -> list[str]:
    """--only a,b,...: the parts to run, in the bench's order (all when not given)."""
    if not only:
        return list(PARTS)
    chosen = {p.strip() for p in only.split(",") if p.strip()}
    unknown = chosen - set(PARTS)
    if unknown:
        raise SystemExit(f"--only: unknown part(s) {sorted(unknown)}; parts: {','.join(PARTS)}")
    if chosen & NEEDS_FANOUT and "fanout" not in chosen:
        raise SystemExit(f"--only: {sorted(chosen & NEEDS_FANOUT)} send into the fan-out's channels: add fanout")
    return [p for p in PARTS if p in chosen]


def _rates(fan: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    keys = ("start_call_s", "planning_s", "tenths_recipients_per_s", "first_tenth_recipients_per_s",
            "last_tenth_recipients_per_s", "last_to_first_tenth")
    return {f"{prefix}recipients_per_s": round(fan["recipients_per_s"]), f"{prefix}seconds": round(fan["seconds"], 2),
            **{prefix + k: fan[k] for k in keys}}


async def _measure(client: Client, dsn: str, app_id: int, n: int,
                   workers: list[subprocess.Popen[bytes]], sink: Sink, args: argparse.Namespace
                   ) -> dict[str, Any]:
    todo = parts(args.only)
    progress(f"parts: {','.join(todo)}")
    ids = [f"u{i:09d}" for i in range(n)]
    import_rate = await benchsetup.audience(client, dsn, app_id, ids)
    out: dict[str, Any] = {"parts": todo}
    fanout: dict[str, Any] = {}
    samplers: list[RssSampler] = []

    def sampler() -> RssSampler:
        samplers.append(RssSampler([w.pid for w in workers]))
        return samplers[-1]

    if "addtargets" in todo:
        out["addtargets"] = {**await benchsetup.addtargets(client), "import_targets_per_s": round(import_rate)}
        progress(f"addtargets {out['addtargets']}")
    if "targets_query" in todo:
        out["targets_query"] = await targets_query(client)
        progress(f"targets/query {out['targets_query']}")
    batch = args.batch_size or 2000
    ceil = {"sequential": 0.0, "hashed": 0.0}
    for keys, part in zip(CEILING_KEYS, ("ceiling", "ceiling_hashed"), strict=True):
        if part in todo:
            progress(f"ceiling, {keys} keys: bare set-based insert of the same rows, {n} recipients, batches of {batch}")
            ceil[keys] = await ceiling(dsn, n, batch, connections=2, keys=keys)
            progress(f"ceiling, {keys} keys: {ceil[keys]:,.0f} recipients/s")
    if ceil["sequential"]:
        fanout["ceiling_recipients_per_s"] = round(ceil["sequential"])
    if ceil["hashed"]:
        fanout["ceiling_hashed_recipients_per_s"] = round(ceil["hashed"])
    fan: dict[str, Any] | None = None
    if "fanout" in todo:
        where = Where(dsn, await pids(dsn, workers), batch) if args.where else None
        wal0 = await lsn(dsn)
        fanout["settled"] = await benchsettle.settle(dsn)  # as before the funnel, which compares with it
        fan = await fanout_run(client, "bench-1", "messaging", n, sampler(), skip_webhook=True, where=where)
        progress(f"fan-out {fan['recipients_per_s']:,.0f} recipients/s, tenths {fan['tenths_recipients_per_s']}")
        fanout.update(_rates(fan))
        if "where" in fan:
            out["where"] = fan["where"]
        if ceil["sequential"]:
            fanout["ratio"] = round(fan["recipients_per_s"] / ceil["sequential"], 3)
        if ceil["hashed"]:
            fanout["ratio_hashed"] = round(fan["recipients_per_s"] / ceil["hashed"], 3)
        out["memory"] = {"rss_mb_at_10pct": fan["rss_at_10"], "rss_mb_at_100pct": fan["rss_at_100"]}
        out["disk"] = await disk(dsn, Path(args.data_dir).resolve() / str(os.getpid()), wal0)
        progress(f"disk after the fan-out {out['disk']}")
    if "second" in todo and fan:  # the same audience again: every channel exists
        fan_b = await fanout_run(client, "bench-1b", "messaging", n, sampler(), skip_webhook=True)
        progress(f"second campaign {fan_b['recipients_per_s']:,.0f} recipients/s")
        fanout.update({**_rates(fan_b, "second_campaign_"),
                       "second_campaign_ratio": round(fan_b["recipients_per_s"] / fan["recipients_per_s"], 3)})
    if "webhooks" in todo:
        await client.ok("PATCH", "/app", {"webhook_url": sink.url, "webhook_rate_limit": 0})
        hooks = await sink_run(dsn, app_id, sink, k=max(2000, min(20_000, n // 10)))
        progress(f"webhooks {hooks}")
        plain = PlainReceiver().start()
        try:  # the same worker(s) against Python's http.server (SPEC 10: every event on attempt 1)
            await client.ok("PATCH", "/app", {"webhook_url": plain.url})
            progress("webhooks: one campaign's events to a plain http.server receiver")
            hooks["plain_http_server"] = await plain_receiver_run(
                dsn, app_id, plain, max(1000, min(10_000, n // 20)), "bench-plain",
                timeout_s=max(60.0, n / 1000))
            progress(f"webhooks plain http.server {hooks['plain_http_server']}")
        finally:
            plain.stop()
        out["webhooks"] = hooks
    # The other audience kinds through the same send path, into bench-1's channels (which now
    # exist): sender_mode include (the sender's membership is probed per channel), and a
    # channel segment (each channel's 1:1 receiver is read with it).
    if "include" in todo and fan:
        fan3 = await fanout_run(client, "bench-3", "messaging", n, sampler(), skip_webhook=True,
                                extra={"sender_mode": "include"})
        progress(f"fan-out, sender_mode include {fan3['recipients_per_s']:,.0f} recipients/s")
        fanout["include_mode_recipients_per_s"] = round(fan3["recipients_per_s"])
        fanout["include_mode_ratio"] = round(fan3["recipients_per_s"] / fan["recipients_per_s"], 3)
    if "channels" in todo and fan:
        await client.ok("POST", "/segments", {"type": "channel", "id": "bench-rooms", "filter": {"type": "messaging"}})
        fan4 = await fanout_run(client, "bench-4", "messaging", n, sampler(), skip_webhook=True,
                                extra={"segment_ids": ["bench-rooms"], "create_channels": False,
                                       "channel_template": None})
        progress(f"fan-out, channel segment {fan4['recipients_per_s']:,.0f} recipients/s")
        fanout["channel_segment_recipients_per_s"] = round(fan4["recipients_per_s"])
        fanout["channel_segment_ratio"] = round(fan4["recipients_per_s"] / fan["recipients_per_s"], 3)
    if "funnel" in todo and fan:  # issue 17: track_clicks + variants, redirects, conversions
        async def funnel_fanout(cid: str, ctype: str, extra: dict[str, Any]) -> dict[str, Any]:
            fwhere = Where(dsn, await pids(dsn, workers), batch) if args.where else None
            return await fanout_run(client, cid, ctype, n, sampler(), skip_webhook=True, extra=extra, where=fwhere)
        out["funnel"] = await benchfunnel.run(client, dsn, n, fan["recipients_per_s"], funnel_fanout)
    if "triggers_and_policy" in todo:  # issue 16: events, policy (broadcaster/benchauto.py)
        async def plain_fanout(cid: str, **kw: Any) -> dict[str, Any]:
            return await fanout_run(client, cid, "messaging", n, sampler(), skip_webhook=True, **kw)
        out["triggers_and_policy"] = await benchauto.run(client, dsn, app_id, n, plain_fanout)
    if "hooks_fanout" in todo:
        await client.ok("PATCH", "/app", {"webhook_url": sink.url, "webhook_rate_limit": 0})
        hwhere = Where(dsn, await pids(dsn, workers), batch) if args.where else None
        delivered0 = sink.count
        fan2 = await fanout_run(client, "bench-2", "bench2", n, sampler(), skip_webhook=False, where=hwhere)
        # the pump's share beside the fan-out: events delivered before the campaign completed
        fanout["with_webhooks_delivered_during"] = sink.count - delivered0
        progress(f"fan-out with webhooks {fan2['recipients_per_s']:,.0f} recipients/s,"
                 f" {sink.count - delivered0} of {2 * n} events delivered meanwhile")
        if "where" in fan2:  # the same profile with webhooks on (routing and delivery beside)
            out["where_hooks_fanout"] = fan2["where"]
        fanout["with_webhooks_recipients_per_s"] = round(fan2["recipients_per_s"])
        if fan:
            fanout["with_webhooks_ratio"] = round(fan2["recipients_per_s"] / fan["recipients_per_s"], 3)
    if samplers:
        fanout["worker_peak_rss_mb"] = round(max(s.peak for s in samplers), 1)
    if args.plot and fan:
        plot(args.plot, fan["timeline"], ceil["sequential"], ceil["hashed"])
    out["fanout"] = fanout
    return out

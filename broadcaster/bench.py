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

from broadcaster import benchauto, devstack
from broadcaster.benchhooks import plain_receiver_run
from broadcaster.benchparts import Client, RssSampler, Sink, ceiling, progress
from broadcaster.plainreceiver import PlainReceiver
from broadcaster.store import apps, outbox


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recipients", type=int, default=1_000_000, help="audience size (default 1M)")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--batch-size", type=int, default=0, help="recipients per fan-out batch")
    p.add_argument("--json", dest="json_path", default=None, help="also write the result here")
    p.add_argument("--plot", default=None, help="write a PNG of messages sent over time")
    p.add_argument("--data-dir", default=".broadcaster/bench", help="embedded servers' data")


def run(args: argparse.Namespace) -> int:
    result = asyncio.run(_main(args))
    text = orjson.dumps(result, option=orjson.OPT_INDENT_2).decode()
    print(text, flush=True)
    if args.json_path:
        Path(args.json_path).write_text(text + "\n")
    return 0


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return round(s[min(len(s) - 1, int(q * len(s)))], 2) if s else 0.0


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
        await _wait_up(client)
        machine["redis_version"] = await _redis_version(redis_url)
        out = await _measure(client, dsn, app.id, n, workers, sink, args)
    finally:
        await client.close()
    return {"machine": machine, "recipients": n, **out}


async def _wait_up(client: Client) -> None:
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            status, _ = await client.call("GET", "/healthz")
            if status == 200:
                return
        except OSError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError("API did not start")


async def _redis_version(url: str) -> str:
    from redis.asyncio import Redis

    r = Redis.from_url(url)
    try:
        info = await r.info("server")
        return str(info.get("redis_version"))
    finally:
        await r.aclose()


async def _measure(client: Client, dsn: str, app_id: int, n: int,
                   workers: list[subprocess.Popen[bytes]], sink: Sink, args: argparse.Namespace
                   ) -> dict[str, Any]:
    ids = [f"u{i:09d}" for i in range(n)]
    progress(f"creating {n} users (COPY, not measured)")
    conn = await asyncpg.connect(dsn)
    await conn.copy_records_to_table(
        "users", records=[(app_id, u, f"User {u}") for u in [*ids, "sender"]],
        columns=["app_id", "id", "name"])
    await conn.close()

    await client.ok("POST", "/segments", {"type": "user", "id": "bench", "name": "bench"})
    progress("importing targets through addtargets (10,000 a call, 4 in flight)")
    t0 = time.perf_counter()
    done = 0
    sem = asyncio.Semaphore(4)

    async def add(chunk: list[str]) -> None:
        nonlocal done
        async with sem:
            await client.ok("POST", "/segments/bench/addtargets", {"target_ids": chunk})
            done += len(chunk)
            if done % 100_000 < len(chunk) or done == n:
                el = time.perf_counter() - t0
                progress(f"  {done}/{n} targets, {done / el:,.0f}/s")

    await asyncio.gather(*(add(ids[i:i + 10_000]) for i in range(0, n, 10_000)))
    import_rate = n / (time.perf_counter() - t0)
    lat: list[float] = []
    for k in range(10):
        extra = [f"x{k}-{i:05d}" for i in range(10_000)]
        t = time.perf_counter()
        await client.ok("POST", "/segments/bench/addtargets", {"target_ids": extra})
        lat.append((time.perf_counter() - t) * 1000)
        await client.ok("POST", "/segments/bench/deletetargets", {"target_ids": extra})
    addtargets = {"p50_ms": _pct(lat, 0.5), "p99_ms": _pct(lat, 0.99),
                  "import_targets_per_s": round(import_rate)}
    progress(f"addtargets {addtargets}")

    targets_query = await _targets_query(client)
    progress(f"targets/query {targets_query}")

    batch = args.batch_size or 2000
    progress(f"ceiling: bare set-based insert of the same rows, {n} recipients, batches of {batch}")
    ceil = await ceiling(dsn, n, batch, connections=2)
    progress(f"ceiling {ceil:,.0f} recipients/s")
    progress("ceiling with sequential ids (for reference: the best case for every index)")
    ceil_seq = await ceiling(dsn, n, batch, connections=2, same_ids=False)
    progress(f"ceiling with sequential ids {ceil_seq:,.0f} recipients/s")

    sampler = RssSampler([w.pid for w in workers])
    fan = await _fanout(client, "bench-1", "messaging", n, sampler, skip_webhook=True)
    progress(f"fan-out {fan['recipients_per_s']:,.0f} recipients/s")

    await client.ok("PATCH", "/app", {"webhook_url": sink.url, "webhook_rate_limit": 0})
    hooks = await _webhooks(dsn, app_id, sink, k=max(2000, min(20_000, n // 10)))
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
        await client.ok("PATCH", "/app", {"webhook_url": sink.url})
        plain.stop()

    sampler2 = RssSampler([w.pid for w in workers])
    fan2 = await _fanout(client, "bench-2", "bench2", n, sampler2, skip_webhook=False)
    progress(f"fan-out with webhooks {fan2['recipients_per_s']:,.0f} recipients/s")

    # The other audience kinds through the same send path, into bench-1's channels (which now
    # exist): sender_mode include (the sender's membership is probed per channel), and a
    # channel segment (each channel's 1:1 receiver is read with it).
    sampler3 = RssSampler([w.pid for w in workers])
    fan3 = await _fanout(client, "bench-3", "messaging", n, sampler3, skip_webhook=True,
                         extra={"sender_mode": "include"})
    progress(f"fan-out, sender_mode include {fan3['recipients_per_s']:,.0f} recipients/s")
    await client.ok("POST", "/segments", {"type": "channel", "id": "bench-rooms", "filter": {"type": "messaging"}})
    sampler4 = RssSampler([w.pid for w in workers])
    fan4 = await _fanout(client, "bench-4", "messaging", n, sampler4, skip_webhook=True,
                         extra={"segment_ids": ["bench-rooms"], "create_channels": False, "channel_template": None})
    progress(f"fan-out, channel segment {fan4['recipients_per_s']:,.0f} recipients/s")

    async def plain_fanout(cid: str) -> dict[str, Any]:
        return await _fanout(client, cid, "messaging", n, RssSampler([w.pid for w in workers]), skip_webhook=True)
    auto = await benchauto.run(client, dsn, app_id, n, plain_fanout)  # issue 16: events, policy

    if args.plot:
        _plot(args.plot, fan["timeline"], ceil, ceil_seq)
    return {
        "fanout": {
            "recipients_per_s": round(fan["recipients_per_s"]),
            "seconds": round(fan["seconds"], 2),
            "ceiling_recipients_per_s": round(ceil),
            "ratio": round(fan["recipients_per_s"] / ceil, 3),
            "ceiling_sequential_ids_recipients_per_s": round(ceil_seq),
            "ratio_sequential_ids": round(fan["recipients_per_s"] / ceil_seq, 3),
            "with_webhooks_recipients_per_s": round(fan2["recipients_per_s"]),
            "with_webhooks_ratio": round(fan2["recipients_per_s"] / fan["recipients_per_s"], 3),
            "include_mode_recipients_per_s": round(fan3["recipients_per_s"]),
            "include_mode_ratio": round(fan3["recipients_per_s"] / fan["recipients_per_s"], 3),
            "channel_segment_recipients_per_s": round(fan4["recipients_per_s"]),
            "channel_segment_ratio": round(fan4["recipients_per_s"] / fan["recipients_per_s"], 3),
            "worker_peak_rss_mb": round(max(sampler.peak, sampler2.peak, sampler3.peak, sampler4.peak), 1),
        },
        "addtargets": addtargets,
        "targets_query": targets_query,
        "webhooks": hooks,
        "memory": {"rss_mb_at_10pct": fan["rss_at_10"], "rss_mb_at_100pct": fan["rss_at_100"]},
        "triggers_and_policy": auto,
    }


async def _targets_query(client: Client) -> dict[str, float]:
    path = "/segments/bench/targets/query"
    first: list[float] = []
    for _ in range(10):
        t = time.perf_counter()
        page = await client.ok("POST", path, {"limit": 10_000})
        first.append((time.perf_counter() - t) * 1000)
    cursor = None
    while page.get("next"):
        cursor = page["next"]
        page = await client.ok("POST", path, {"limit": 10_000, "next": cursor})
    last: list[float] = []
    for _ in range(10):
        t = time.perf_counter()
        await client.ok("POST", path, {"limit": 10_000, **({"next": cursor} if cursor else {})})
        last.append((time.perf_counter() - t) * 1000)
    return {"first_page_p50_ms": _pct(first, 0.5), "last_page_p50_ms": _pct(last, 0.5)}


async def _fanout(client: Client, cid: str, channel_type: str, n: int, sampler: RssSampler,
                  *, skip_webhook: bool, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    body = {
        "id": cid, "name": cid, "segment_ids": ["bench"], "sender_id": "sender",
        "create_channels": True, "channel_template": {"type": channel_type},
        "message_template": {"text": "Hi {{ receiver.name }}, I'm {{ sender.name }}!"},
        "skip_webhook": skip_webhook, **(extra or {}),
    }
    await client.ok("POST", "/campaigns", {k: v for k, v in body.items() if v is not None})
    progress(f"fan-out {cid}: start (skip_webhook={skip_webhook})")
    t0 = time.perf_counter()
    await client.ok("POST", f"/campaigns/{cid}/start", {})
    timeline: list[tuple[float, int]] = []
    rss_at_10 = 0.0
    last_print = 0.0
    while True:
        c = (await client.ok("GET", f"/campaigns/{cid}"))["campaign"]
        el = time.perf_counter() - t0
        stats = c.get("stats") or {}
        sent = int(stats.get("stats_messages_sent") or 0)
        timeline.append((el, sent))
        sampler.sample()
        if not rss_at_10 and sent >= n * 0.1:
            rss_at_10 = round(sampler.peak, 1)
        if el - last_print >= 5:
            last_print = el
            progress(f"  {cid}: {sent}/{n} sent, {sent / el:,.0f}/s, worker RSS {sampler.peak:.0f} MiB")
        if c["status"] in ("completed", "stopped"):
            break
        if el > 3600:
            raise RuntimeError(f"campaign {cid} did not complete within an hour")
        await asyncio.sleep(0.2)
    seconds = time.perf_counter() - t0
    return {"recipients_per_s": n / seconds, "seconds": seconds, "timeline": timeline,
            "rss_at_10": rss_at_10 or round(sampler.peak, 1), "rss_at_100": round(sampler.peak, 1)}


async def _webhooks(dsn: str, app_id: int, sink: Sink, k: int) -> dict[str, Any]:
    """Signed deliveries/s from the worker(s) to the local sink: k events put in the outbox
    in one transaction, timed until the sink has them all."""
    progress(f"webhooks: {k} events through the outbox to a local receiver")
    body = {"type": "message.new", "cid": "messaging:bench", "channel_type": "messaging",
            "channel_id": "bench", "message": {"id": "m", "text": "hello " * 20, "type": "regular"},
            "user": {"id": "sender"}, "created_at": "2026-01-01T00:00:00.000000Z"}
    conn = await asyncpg.connect(dsn)
    from broadcaster import db

    await db.init_connection(conn)
    # Count only these message.new events: campaign events of the earlier run may still arrive.
    def got() -> int:
        return sink.by_type.get("message.new", 0) - start_count

    start_count = sink.by_type.get("message.new", 0)
    async with conn.transaction():
        await outbox.add_many(conn, app_id, None, [("message.new", body)] * k)
    await conn.close()
    t0 = time.perf_counter()
    # Bounded by the size of the run: a stalled delivery is reported (delivered < events), not
    # waited out for ten minutes.
    limit_s = max(60.0, k / 100)
    while got() < k:
        if time.perf_counter() - t0 > limit_s:
            progress(f"webhooks: only {got()} of {k} delivered after {limit_s:.0f} s; giving up")
            break
        await asyncio.sleep(0.05)
    seconds = time.perf_counter() - t0
    return {"deliveries_per_s": round(got() / seconds), "delivered": got(), "events": k}


def _plot(path: str, timeline: list[tuple[float, int]], ceil: float, ceil_seq: float) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        progress("--plot needs matplotlib: pip install 'broadcaster[plot]'")
        return
    xs = [t for t, _ in timeline]
    ys = [s for _, s in timeline]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.plot(xs, ys, label="messages sent (campaign stats)")
    ax.plot([0, max(xs or [1])], [0, ceil * max(xs or [1])], "--",
            label=f"PostgreSQL ceiling, same rows ({ceil:,.0f}/s)")
    ax.plot([0, max(xs or [1])], [0, ceil_seq * max(xs or [1])], ":",
            label=f"PostgreSQL ceiling, sequential ids ({ceil_seq:,.0f}/s)")
    ax.set_ylim(0, max(ys or [1]) * 1.05)
    ax.set_xlabel("seconds since start")
    ax.set_ylabel("messages sent")
    ax.set_title("broadcaster fan-out")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    progress(f"plot written to {path}")



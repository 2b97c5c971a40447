"""Webhook and rate-limit performance.

    python scripts/perf_webhooks.py [--events 20000] [--checks 3000]

1. Signed deliveries/s from ONE worker process to a local receiver: N events written to the
   outbox in one transaction, timed until the receiver has them all; once as unrelated
   events, once as one campaign (campaign.started, N message.new, campaign.completed) so the
   per-campaign ordering is part of the measure. Target (issue 5): >= 5,000/s.
   Then one campaign's events (--plain-events message.new) to a plain Python
   `http.server.ThreadingHTTPServer` receiver: deliveries/s, retries, duplicates.
2. Rate-limit check overhead per API request: p50 of the limiter's one Redis script call,
   and p50 of GET /app through the real API with the limit on vs off. Target: < 1 ms p50.

Uses BROADCASTER_DATABASE_URL / BROADCASTER_REDIS_URL when set, else embedded servers;
prints progress on stderr and one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import jwt
import orjson
from aiohttp import web
from redis.asyncio import Redis

from broadcaster import db, devstack, ratelimit
from broadcaster.app import create_app
from broadcaster.benchhooks import plain_receiver_run
from broadcaster.benchparts import Sink, progress
from broadcaster.plainreceiver import PlainReceiver
from broadcaster.settings import Settings
from broadcaster.store import apps, outbox


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return round(s[min(len(s) - 1, int(q * len(s)))], 3)


BODY = {"type": "message.new", "cid": "messaging:perf", "channel_type": "messaging",
        "channel_id": "perf", "message": {"id": "m", "text": "hello " * 20, "type": "regular"},
        "user": {"id": "sender"}, "created_at": "2026-01-01T00:00:00.000000Z"}


class CpuMeter:
    """CPU seconds spent by the worker, this process (the receiver) and our PostgreSQL: on a
    shared 2-core machine, CPU per delivery is steadier than deliveries/s."""

    def __init__(self, worker_pid: int, pg_dir: Path) -> None:
        import psutil

        self.worker = psutil.Process(worker_pid)
        self.me = psutil.Process()
        self.pg = [p for p in psutil.process_iter(["cmdline"])
                   if str(pg_dir) in " ".join(p.info["cmdline"] or [])][:1]

    def sample(self) -> dict[str, float]:
        import psutil

        def cpu(ps: list[Any]) -> float:
            total = 0.0
            for p in ps:
                try:
                    t = p.cpu_times()
                    total += t.user + t.system
                except psutil.Error:
                    continue
            return total

        pg = [*self.pg, *(c for p in self.pg for c in p.children())]
        return {"worker": cpu([self.worker]), "receiver": cpu([self.me]), "postgres": cpu(pg)}


async def deliveries(dsn: str, app_id: int, sink: Sink, n: int, campaign: str | None,
                     meter: CpuMeter | None = None) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    await db.init_connection(conn)
    start = sink.count
    events: list[tuple[str, bytes | dict[str, Any]]] = [("message.new", orjson.dumps(BODY))] * n
    if campaign:
        events = [("campaign.started", {"type": "campaign.started", "campaign": {"id": campaign}}),
                  *events, ("campaign.completed", {"type": "campaign.completed", "campaign": {"id": campaign}})]
    async with conn.transaction():
        await outbox.add_many(conn, app_id, campaign, events)
    await conn.close()
    t0 = time.perf_counter()
    cpu0 = meter.sample() if meter else {}
    want = len(events)
    while sink.count - start < want and time.perf_counter() - t0 < 600:
        await asyncio.sleep(0.02)
    seconds = time.perf_counter() - t0
    got = sink.count - start
    out: dict[str, Any] = {"events": want, "delivered": got, "seconds": round(seconds, 2),
           "deliveries_per_s": round(got / seconds)}
    if meter and got:
        cpu1 = meter.sample()
        out["cpu_us_per_delivery"] = {k: round((cpu1[k] - cpu0[k]) * 1e6 / got) for k in cpu0}
    progress(f"deliveries ({'campaign' if campaign else 'plain'}): {out}")
    return out


async def limiter_overhead(dsn: str, redis_url: str, app: apps.AppRow, checks: int) -> dict[str, Any]:
    r = Redis.from_url(redis_url)
    times = []
    for _ in range(checks):
        t = time.perf_counter()
        await ratelimit.check(r, app.id, "PerfOp", 1_000_000)
        times.append((time.perf_counter() - t) * 1000)
    await r.aclose()
    # the same through the real API: GET /app of two apps, limited and unlimited, requests
    # alternating so both see the same machine load
    settings = Settings(database_url=dsn, redis_url=redis_url, log_level="WARNING",
                        webhook_allow_private=True)
    runner = web.AppRunner(create_app(settings), access_log=None)
    await runner.setup()
    port = devstack.free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    conn = await asyncpg.connect(dsn)
    await db.init_connection(conn)
    free = await apps.create(conn, f"perf-free-{int(time.time())}")
    await apps.update_settings(conn, free.id, {"rate_limits": {"GetApp": 0}})
    await apps.update_settings(conn, app.id, {"rate_limits": {"GetApp": 1_000_000}})
    await conn.close()
    api: dict[str, list[float]] = {"limited": [], "unlimited": []}
    async with aiohttp.ClientSession() as s:
        for i in range(checks + 200):
            who, mode = (app, "limited") if i % 2 else (free, "unlimited")
            token = jwt.encode({"server": True}, who.api_secret, algorithm="HS256")
            t = time.perf_counter()
            async with s.get(f"http://127.0.0.1:{port}/app", params={"api_key": who.api_key},
                             headers={"Authorization": token}) as resp:
                await resp.read()
                assert resp.status == 200, resp.status
                assert ("X-RateLimit-Limit" in resp.headers) == (mode == "limited")
            if i >= 200:  # warm-up done
                api[mode].append((time.perf_counter() - t) * 1000)
    await runner.cleanup()
    out = {
        "limiter_call_p50_ms": pct(times, 0.5), "limiter_call_p99_ms": pct(times, 0.99),
        "get_app_p50_ms_limited": pct(api["limited"], 0.5),
        "get_app_p50_ms_unlimited": pct(api["unlimited"], 0.5),
        "api_overhead_p50_ms": round(pct(api["limited"], 0.5) - pct(api["unlimited"], 0.5), 3),
    }
    progress(f"rate limiter: {out}")
    return out


async def main(args: argparse.Namespace) -> dict[str, Any]:
    base = Path(".broadcaster/perf-webhooks").resolve() / str(os.getpid())
    async with devstack.servers(base, "perf") as (dsn, redis_url):
        sink = await Sink().start()
        worker = None
        try:
            conn = await asyncpg.connect(dsn)
            await db.init_connection(conn)
            app = await apps.create(conn, f"perf-{int(time.time())}")
            await apps.update_settings(conn, app.id, {"webhook_url": sink.url, "webhook_rate_limit": 0})
            pg_version = await conn.fetchval("SHOW server_version")
            await conn.close()
            env = {**os.environ, "BROADCASTER_DATABASE_URL": dsn, "BROADCASTER_REDIS_URL": redis_url,
                   "BROADCASTER_LOG_LEVEL": os.environ.get("PERF_LOG_LEVEL", "WARNING"), "BROADCASTER_QUEUE_NAME": f"perf:{os.getpid()}",
                   "BROADCASTER_WEBHOOK_ALLOW_PRIVATE": "1"}
            worker = subprocess.Popen([sys.executable, "-m", "broadcaster", "worker"], env=env)
            await asyncio.sleep(2)
            meter = CpuMeter(worker.pid, base)
            warm = await deliveries(dsn, app.id, sink, 500, None)
            plain = await deliveries(dsn, app.id, sink, args.events, None, meter)
            ordered = await deliveries(dsn, app.id, sink, args.events, "perf-campaign", meter)
            plain = PlainReceiver().start()
            try:
                conn = await asyncpg.connect(dsn)
                await db.init_connection(conn)
                papp = await apps.create(conn, f"perf-plain-{int(time.time())}")
                await apps.update_settings(conn, papp.id, {"webhook_url": plain.url, "webhook_rate_limit": 0})
                await conn.close()
                cpu0 = meter.sample()
                plain_run = await plain_receiver_run(dsn, papp.id, plain, args.plain_events, "perf-plain")
                cpu1 = meter.sample()
                plain_run["cpu_us_per_delivery"] = {
                    k: round((cpu1[k] - cpu0[k]) * 1e6 / max(1, plain_run["delivered"])) for k in cpu0}
                progress(f"deliveries (plain http.server receiver): {plain_run}")
            finally:
                plain.stop()
            limiter = None if args.skip_limiter else await limiter_overhead(dsn, redis_url, app, args.checks)
            return {"machine": {"cpus": os.cpu_count(), "postgres": pg_version}, "warmup": warm,
                    "webhooks_plain": plain, "webhooks_one_campaign": ordered,
                    "webhooks_plain_http_server": plain_run, "rate_limit": limiter,
                    "load_average_1m": round(os.getloadavg()[0], 2)}
        finally:
            if worker is not None:
                worker.terminate()
                worker.wait(15)
            await sink.stop()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--events", type=int, default=20_000)
    p.add_argument("--checks", type=int, default=3_000)
    p.add_argument("--plain-events", type=int, default=10_000,
                   help="message.new events of the campaign sent to the plain http.server receiver")
    p.add_argument("--skip-limiter", action="store_true", help="only the delivery figures")
    print(orjson.dumps(asyncio.run(main(p.parse_args())), option=orjson.OPT_INDENT_2).decode())

"""Funnel endpoints under load (SPEC 10 / issue 17): GET /c/{token} latency and redirects/s from
one API process, and POST /conversions of 1,000 items. A real campaign of N recipients
(default 20,000; track_clicks, create_channels) is fanned out first by one worker, on
embedded PostgreSQL and Redis; then clicks of distinct recipients (the tokens the messages
carry: same key, same tuple) and conversions of recipients (attribution does its real
lookups). Prints one JSON object.

    .venv/bin/python scripts/perf_funnel.py [--recipients N] [--clicks K] [--concurrency C]
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
import orjson

from broadcaster import devstack
from broadcaster.benchparts import Client
from broadcaster.domain import links
from broadcaster.migrate import migrate
from broadcaster.settings import Settings
from broadcaster.store import apps

ROOT = Path(__file__).resolve().parent.parent
SECRET = "perf-link-secret"


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(p * len(xs)))] * 1000, 2)


async def clicks(base: str, app_id: int, n: int, k: int, conc: int) -> dict[str, Any]:
    secret = Settings(link_secret=SECRET).click_secret
    toks = [links.token(secret, links.Click(app_id, "perf", f"u{i % n:09d}", 0, "https://shop.example/x", False))
            for i in range(k)]
    lat: list[float] = []
    bad = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=conc)) as s:
        queue = iter(toks)

        async def run() -> None:
            nonlocal bad
            for t in queue:
                t0 = time.perf_counter()
                async with s.get(f"{base}/c/{t}", allow_redirects=False) as r:
                    await r.read()
                    bad += r.status != 302
                lat.append(time.perf_counter() - t0)

        t0 = time.perf_counter()
        await asyncio.gather(*(run() for _ in range(conc)))
        seconds = time.perf_counter() - t0
    return {"clicks": k, "concurrency": conc, "redirects_per_s": round(k / seconds), "p50_ms": pct(lat, 0.5),
            "p99_ms": pct(lat, 0.99), "non_302": bad}


async def conversions(client: Client, n: int, calls: int) -> dict[str, Any]:
    lat: list[float] = []
    attributed = 0
    for c in range(calls):
        items = [{"id": f"o{c}-{i}", "user_id": f"u{(c * 1000 + i) % n:09d}", "event": "purchase",
                  "value": 9.99, "currency": "EUR"} for i in range(1000)]
        t0 = time.perf_counter()
        out = await client.ok("POST", "/conversions", {"conversions": items})
        lat.append(time.perf_counter() - t0)
        attributed += out["attributed"]
    return {"calls_of_1000": calls, "p50_ms": pct(lat, 0.5), "max_ms": round(max(lat) * 1000, 2),
            "attributed": attributed}


async def main(args: argparse.Namespace) -> dict[str, Any]:
    n = args.recipients
    base = ROOT / ".broadcaster" / f"perf-funnel-{os.getpid()}"
    pg = devstack.start_postgres(base / "pg", throwaway=True)
    redis = devstack.start_redis(base / "redis")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        await devstack.ensure_database(pg.admin_url, "perf")
        dsn = pg.url_for("perf")
        await migrate(dsn)
        conn = await asyncpg.connect(dsn)
        app = await apps.create(conn, "perf")
        await conn.copy_records_to_table(
            "users", records=[(app.id, f"u{i:09d}", f"User {i}") for i in range(n)] + [(app.id, "sender", "Sender")],
            columns=["app_id", "id", "name"])
        await conn.close()
        port = devstack.free_port()
        env = {**os.environ, "BROADCASTER_DATABASE_URL": dsn, "BROADCASTER_REDIS_URL": redis.url,
               "BROADCASTER_PORT": str(port), "BROADCASTER_LOG_LEVEL": "WARNING",
               "BROADCASTER_LINK_SECRET": SECRET}
        procs.append(subprocess.Popen([sys.executable, "-m", "broadcaster", "serve"], env=env))
        procs.append(subprocess.Popen([sys.executable, "-m", "broadcaster", "worker"], env=env))
        url = f"http://127.0.0.1:{port}"
        client = Client(url, app.api_key, app.api_secret)
        try:
            for _ in range(200):
                try:
                    if (await client.call("GET", "/healthz"))[0] == 200:
                        break
                except OSError:
                    pass
                await asyncio.sleep(0.05)
            await client.ok("POST", "/segments", {"id": "all", "type": "user", "all_users": True})
            await client.ok("POST", "/campaigns", {
                "id": "perf", "segment_ids": ["all"], "sender_id": "sender", "create_channels": True,
                "channel_template": {"type": "messaging"}, "skip_webhook": True, "track_clicks": True,
                "message_template": {"text": "Hi {{ receiver.name }}: https://shop.example/x"},
            })
            await client.ok("POST", "/campaigns/perf/start", {})
            while (await client.ok("GET", "/campaigns/perf"))["campaign"]["status"] != "completed":
                await asyncio.sleep(0.2)
            out: dict[str, Any] = {"recipients": n}
            out["follow_link"] = await clicks(url, app.id, n, args.clicks, args.concurrency)
            out["conversions"] = await conversions(client, n, args.conversion_calls)
            stats = (await client.ok("GET", "/campaigns/perf"))["campaign"]["stats"]
            out["stats"] = {k: stats[k] for k in ("stats_users_clicked", "stats_clicks", "stats_users_converted",
                                                  "stats_conversions", "stats_revenue", "click_rate")}
            out["machine"] = {"cpus": os.cpu_count()}
            return out
        finally:
            await client.close()
    finally:
        devstack.stop_processes(procs)
        redis.stop()
        pg.stop()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--recipients", type=int, default=20_000)
    ap.add_argument("--clicks", type=int, default=20_000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--conversion-calls", type=int, default=20)
    print(orjson.dumps(asyncio.run(main(ap.parse_args()))).decode())

"""Fan-out throughput: N recipients (default 100,000) in an all_users segment, create_channels
with a templated text, one API process and one worker process on embedded PostgreSQL and
Redis. Prints one JSON object: recipients/s from the start call to `completed`, how long the
start call took (it fixes the audience), and the worker's peak RSS.

    .venv/bin/python scripts/perf_fanout.py [--recipients N] [--batch-size B] [--webhooks] [--track-clicks] [--variants]
        [--sender-visibility hidden|archived]
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

import asyncpg
import orjson

from broadcaster import devstack
from broadcaster.benchparts import Client, RssSampler
from broadcaster.migrate import migrate
from broadcaster.store import apps

ROOT = Path(__file__).resolve().parent.parent


async def main(args: argparse.Namespace) -> dict[str, Any]:
    n = args.recipients
    base = ROOT / ".broadcaster" / f"perf-{os.getpid()}"
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
        if args.webhooks:  # events into the outbox; nothing drains them here
            await conn.execute("UPDATE apps SET settings = '{\"webhook_url\": \"http://127.0.0.1:9/x\"}'")
        await conn.close()
        port = devstack.free_port()
        env = {**os.environ, "BROADCASTER_DATABASE_URL": dsn, "BROADCASTER_REDIS_URL": redis.url,
               "BROADCASTER_PORT": str(port), "BROADCASTER_LOG_LEVEL": "WARNING",
               "BROADCASTER_BATCH_SIZE": str(args.batch_size)}
        procs.append(subprocess.Popen([sys.executable, "-m", "broadcaster", "serve"], env=env))
        worker = subprocess.Popen([sys.executable, "-m", "broadcaster", "worker"], env=env)
        procs.append(worker)
        client = Client(f"http://127.0.0.1:{port}", app.api_key, app.api_secret)
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
                "channel_template": {"type": "messaging"}, "skip_webhook": not args.webhooks,
                "message_template": {"text": "Hi {{ receiver.name }}, I'm {{ sender.name }}!"
                                     + (" https://shop.example/sale" if args.track_clicks else ""),
                                     **({"variants": [
                                         {"id": "a", "weight": 1, "text": "A: Hi {{ receiver.name }}! https://shop.example/a"},
                                         {"id": "b", "weight": 1, "text": "B: Hey {{ receiver.name }}! https://shop.example/b"},
                                     ]} if args.variants else {})},
                "track_clicks": args.track_clicks, "variants": args.variants,
                **({"sender_visibility": args.sender_visibility} if args.sender_visibility else {}),
            })
            sampler = RssSampler([worker.pid])
            await asyncio.sleep(1.0)
            sampler.sample()
            rss_idle = sampler.peak
            t0 = time.perf_counter()
            await client.ok("POST", "/campaigns/perf/start", {})
            start_call = time.perf_counter() - t0  # the audience is fixed inside this call
            while True:
                c = (await client.ok("GET", "/campaigns/perf"))["campaign"]
                sampler.sample()
                if c["status"] in ("completed", "stopped"):
                    break
                await asyncio.sleep(0.1)
            seconds = time.perf_counter() - t0
        finally:
            await client.close()
        return {
            "recipients": n, "batch_size": args.batch_size, "webhooks": args.webhooks,
            "track_clicks": args.track_clicks, "variants": args.variants, "sender_visibility": args.sender_visibility,
            "seconds": round(seconds, 2), "recipients_per_s": round(n / seconds),
            "start_call_s": round(start_call, 3),
            "messages_sent": c["stats"]["stats_messages_sent"],
            "channels_created": c["stats"]["stats_channels_created"],
            "worker_rss_idle_mib": round(rss_idle, 1), "worker_rss_peak_mib": round(sampler.peak, 1),
        }
    finally:
        devstack.stop_processes(procs)
        redis.stop()
        pg.stop()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--recipients", type=int, default=100_000)
    ap.add_argument("--batch-size", type=int, default=2000)
    ap.add_argument("--webhooks", action="store_true")
    ap.add_argument("--track-clicks", action="store_true", help="a link in the text, tracked")
    ap.add_argument("--variants", action="store_true", help="two 50/50 variants, each with a link")
    ap.add_argument("--sender-visibility", choices=("hidden", "archived"), help="hide/archive for the sender")
    print(orjson.dumps(asyncio.run(main(ap.parse_args()))).decode())

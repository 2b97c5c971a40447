"""Segment performance: CLI import of N ids, addtargets p50 on a full segment, page p50s.

    python scripts/perf_segments.py [--ids 1000000] [--concurrency 4]

Uses BROADCASTER_DATABASE_URL / BROADCASTER_REDIS_URL when set, else embedded servers;
starts its own API process; prints progress on stderr and one JSON object on stdout.
Targets (issue 3): import of 1M <= 60 s; addtargets(10k) p50 <= 100 ms on a 1M segment;
10k-target page p50 <= 50 ms at the first and the last page.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from broadcaster import devstack
from broadcaster.benchparts import Client, progress
from broadcaster.store import apps


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return round(s[min(len(s) - 1, int(q * len(s)))], 2)


async def timed(client: Client, path: str, body: Any) -> tuple[float, dict[str, Any]]:
    t = time.perf_counter()
    out = await client.ok("POST", path, body)
    return (time.perf_counter() - t) * 1000, out


async def measure(client: Client, env: dict[str, str], n: int, concurrency: int) -> dict[str, Any]:
    await client.ok("POST", "/segments", {"type": "user", "id": "perf"})
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "ids.txt"
        # random-looking ids (not pre-sorted): inserts land all over the primary key index
        src.write_text("".join(f"user-{(i * 2654435761) % 4294967296:010d}\n" for i in range(n)))
        progress(f"importing {n:,} ids with the CLI (concurrency {concurrency})")
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "broadcaster", "import-targets", "perf", str(src), "--quiet",
             "--concurrency", str(concurrency)], env=env, capture_output=True, check=False,
        )
        import_s = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr.decode()[-2000:])
        summary = orjson.loads(proc.stdout.decode().strip().splitlines()[-1])
    progress(f"import: {import_s:.1f}s, size {summary['size']:,}")

    add_ms: list[float] = []
    for k in range(15):
        extra = [f"extra-{k:02d}-{(i * 7919) % 100_000:05d}" for i in range(10_000)]
        ms, out = await timed(client, "/segments/perf/addtargets", {"target_ids": extra})
        assert out["added"] == 10_000, out
        add_ms.append(ms)
        await client.ok("POST", "/segments/perf/deletetargets", {"target_ids": extra})
    progress(f"addtargets(10k) p50 {pct(add_ms, 0.5)} ms")

    path = "/segments/perf/targets/query"
    first = [(await timed(client, path, {"limit": 10_000}))[0] for _ in range(15)]
    # jump to the last page: a descending page's first row is the last page's lower bound
    _, page = await timed(client, path, {"limit": 10_000})
    cursor = None
    pages = 1
    while page.get("next"):
        cursor = page["next"]
        _, page = await timed(client, path, {"limit": 10_000, "next": cursor})
        pages += 1
    last = [(await timed(client, path, {"limit": 10_000, "next": cursor}))[0] for _ in range(15)]
    desc = [(await timed(client, path, {"limit": 10_000, "sort": [{"field": "created_at", "direction": -1}]}))[0]
            for _ in range(15)]
    progress(f"pages: first p50 {pct(first, 0.5)} ms, last p50 {pct(last, 0.5)} ms ({pages} pages)")
    return {
        "ids": n,
        "import_seconds": round(import_s, 2),
        "import_ids_per_s": round(n / import_s),
        "segment_size": summary["size"],
        "addtargets_10k_p50_ms": pct(add_ms, 0.5),
        "addtargets_10k_p90_ms": pct(add_ms, 0.9),
        "page_10k_first_p50_ms": pct(first, 0.5),
        "page_10k_last_p50_ms": pct(last, 0.5),
        "page_10k_created_at_desc_p50_ms": pct(desc, 0.5),
        "pages_walked": pages,
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    base = Path(".broadcaster/perf-segments").resolve() / str(os.getpid())
    async with devstack.servers(base, "perf") as (dsn, redis_url):
        conn = await asyncpg.connect(dsn)
        app = await apps.create(conn, f"perf-{int(time.time())}")
        pg_version = await conn.fetchval("SHOW server_version")
        await conn.close()
        port = devstack.free_port()
        env = {**os.environ, "BROADCASTER_DATABASE_URL": dsn, "BROADCASTER_REDIS_URL": redis_url,
               "BROADCASTER_PORT": str(port), "BROADCASTER_LOG_LEVEL": "WARNING",
               "BROADCASTER_URL": f"http://127.0.0.1:{port}", "BROADCASTER_API_KEY": app.api_key,
               "BROADCASTER_API_SECRET": app.api_secret}
        server = subprocess.Popen([sys.executable, "-m", "broadcaster", "serve"], env=env)
        client = Client(f"http://127.0.0.1:{port}", app.api_key, app.api_secret)
        try:
            for _ in range(300):
                try:
                    if (await client.call("GET", "/healthz"))[0] == 200:
                        break
                except OSError:
                    pass
                await asyncio.sleep(0.1)
            out = await measure(client, env, args.ids, args.concurrency)
        finally:
            await client.close()
            server.terminate()
            server.wait(15)
        return {"machine": {"cpus": os.cpu_count(), "postgres": pg_version}, **out}


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--ids", type=int, default=1_000_000)
    p.add_argument("--concurrency", type=int, default=4)
    print(orjson.dumps(asyncio.run(main(p.parse_args())), option=orjson.OPT_INDENT_2).decode())

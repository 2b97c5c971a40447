"""The bench's setup around its measurements: waiting for the API, the servers' versions, the
audience (users by COPY, the segment through addtargets) and addtargets' latency."""

from __future__ import annotations

import asyncio
import time

import asyncpg

from broadcaster.benchparts import Client, pct, progress


async def wait_up(client: Client) -> None:
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


async def redis_version(url: str) -> str:
    from redis.asyncio import Redis

    r = Redis.from_url(url)
    try:
        info = await r.info("server")
        return str(info.get("redis_version"))
    finally:
        await r.aclose()


async def audience(client: Client, dsn: str, app_id: int, ids: list[str]) -> float:
    """The users (COPY, not measured) and the segment of all of them through addtargets
    (10,000 a call, 4 in flight); returns the import rate."""
    n = len(ids)
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
                progress(f"  {done}/{n} targets, {done / (time.perf_counter() - t0):,.0f}/s")

    await asyncio.gather(*(add(ids[i:i + 10_000]) for i in range(0, n, 10_000)))
    return n / (time.perf_counter() - t0)


async def addtargets(client: Client) -> dict[str, float]:
    lat: list[float] = []
    for k in range(10):
        extra = [f"x{k}-{i:05d}" for i in range(10_000)]
        t = time.perf_counter()
        await client.ok("POST", "/segments/bench/addtargets", {"target_ids": extra})
        lat.append((time.perf_counter() - t) * 1000)
        await client.ok("POST", "/segments/bench/deletetargets", {"target_ids": extra})
    return {"p50_ms": pct(lat, 0.5), "p99_ms": pct(lat, 0.99)}

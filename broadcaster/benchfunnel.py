"""The funnel part of `broadcaster bench` (issue 17): a campaign with `track_clicks` and two
A/B variants (each with a link) against the plain fan-out of the same run and against the
same plain campaign run again just before it (to the same audience, into new channels: the
like-for-like reference of a campaign that is not the audience's first), then the tracked
links its messages really carry followed through `GET /c/{token}` (redirects/s at concurrency
32, latency one at a time), and `POST /conversions` of 1,000 attributed to it."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import asyncpg

from broadcaster.benchparts import Client, pct, progress
from broadcaster.benchsettle import settle

VARIANTS = [
    {"id": "a", "weight": 1, "text": "Hi {{ receiver.name }}: spring sale https://shop.example/spring?u={{ receiver.id }}"},
    {"id": "b", "weight": 1, "text": "{{ receiver.name }}, 20 % off https://shop.example/b and https://shop.example/faq"},
]
# New channels of types that sort after the plain run's `messaging` (and the reference's
# before the funnel's), so that their keys (channels' cid and pair, members' and messages'
# cid) grow at the right edge of the indexes as the plain run's did, and the ratio compares
# the funnel's cost, not where its keys land (`benchf` sorted before `messaging`: a million
# keys into the middle of the plain run's indexes, half-full page splits).
CHANNEL_TYPE = "promo"
REFERENCE_TYPE = "plain2"
TOKEN = re.compile(r"/c/([A-Za-z0-9_-]+)")
CONCURRENCY = 32

Fanout = Callable[[str, str, dict[str, Any]], Awaitable[dict[str, Any]]]


async def run(client: Client, dsn: str, n: int, plain_rate: float, fanout: Fanout) -> dict[str, Any]:
    cid = "bench-funnel"
    # The reference in the funnel's place: the plain fan-out's campaign again, to the same
    # audience into new channels, just before it. A campaign to users who have channels
    # already adds its keys beside theirs in indexes led by the user (members_app_user,
    # campaign_recipients_capped): in the middle of them, where the first campaign's went
    # to the right edge; both runs pay that here.
    ref_quiet = await settle(dsn)
    ref = await fanout("bench-1c", REFERENCE_TYPE, {})  # ids sorting between bench-1 and bench-funnel
    progress(f"plain campaign to the same audience into new channels {round(ref['recipients_per_s']):,}/s, "
             f"tenths {ref['tenths_recipients_per_s']}")
    quiet = await settle(dsn)
    progress(f"funnel: waited {quiet['settle_s']} s for autovacuum to finish {quiet['waited_for']}")
    fan = await fanout(cid, CHANNEL_TYPE, {"track_clicks": True,
                                       "message_template": {"text": "base", "variants": VARIANTS}})
    rate = fan["recipients_per_s"]
    out: dict[str, Any] = {"recipients_per_s": round(rate),
                           "ratio_to_plain": round(rate / plain_rate, 3) if plain_rate else None,
                           "plain_again_recipients_per_s": round(ref["recipients_per_s"]),
                           "plain_again_tenths_recipients_per_s": ref["tenths_recipients_per_s"],
                           "plain_again_settled": ref_quiet,
                           "ratio_to_plain_again": round(rate / ref["recipients_per_s"], 3),
                           "settled": quiet, "start_call_s": fan["start_call_s"],
                           "tenths_recipients_per_s": fan["tenths_recipients_per_s"]}
    progress(f"fan-out with track_clicks and two variants {out['recipients_per_s']:,}/s "
             f"({out['ratio_to_plain']} of the plain fan-out, {out['ratio_to_plain_again']} of the plain "
             f"campaign just before it), tenths {fan['tenths_recipients_per_s']}")
    if "where" in ref:
        out["plain_again_where"] = ref["where"]
    if "where" in fan:  # --where: CPU per process and the sampled statements of this run
        out["where"] = fan["where"]
        progress(f"  where: {fan['where']}")
    tokens = await _tokens(dsn, cid, min(n, 20_000))
    pm = await _postmaster(dsn)
    out["follow_link"] = await follow(client.base, tokens, CONCURRENCY, pm)
    out["follow_link_one_at_a_time"] = await follow(client.base, tokens[:1000], 1, pm)
    progress(f"GET /c/{{token}} {out['follow_link']}; one at a time {out['follow_link_one_at_a_time']}")
    out["clicks_counted_after_s"] = await _counted(client, cid, len(tokens) + 1000)
    progress(f"every answered click counted {out['clicks_counted_after_s']} s after the last redirect")
    out["conversions"] = await conversions(client, n, calls=20)
    progress(f"POST /conversions of 1,000 {out['conversions']}")
    stats = (await client.ok("GET", f"/campaigns/{cid}"))["campaign"]["stats"]
    out["stats"] = {k: stats.get(k) for k in ("stats_users_clicked", "stats_clicks", "stats_users_converted",
                                              "click_rate", "conversion_rate", "variants")}
    return out


async def _counted(client: Client, cid: str, clicks: int) -> float:
    """Seconds until the drainer has counted every answered click (the redirect answers
    once its click is in the outbox)."""
    t0 = time.perf_counter()
    while True:
        stats = (await client.ok("GET", f"/campaigns/{cid}"))["campaign"]["stats"]
        if int(stats.get("stats_clicks") or 0) >= clicks:
            return round(time.perf_counter() - t0, 2)
        if time.perf_counter() - t0 > 600:
            raise RuntimeError(f"{stats.get('stats_clicks')} of {clicks} clicks counted after 600 s")
        await asyncio.sleep(0.1)


async def _tokens(dsn: str, cid: str, k: int) -> list[str]:
    """The first tracked link of k messages, as their recipients would follow it."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT text FROM messages WHERE campaign_id = $1 LIMIT $2", cid, k)
    finally:
        await conn.close()
    toks = [m.group(1) for r in rows if (m := TOKEN.search(r["text"] or ""))]
    if len(toks) < len(rows):
        raise RuntimeError(f"{len(rows) - len(toks)} of {len(rows)} messages carry no tracked link")
    return toks


async def follow(base: str, tokens: list[str], concurrency: int, postmaster: int | None = None) -> dict[str, Any]:
    lat: list[float] = []
    bad = 0
    queue = iter(tokens)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as s:

        async def worker() -> None:
            nonlocal bad
            for t in queue:
                t0 = time.perf_counter()
                async with s.get(f"{base}/c/{t}", allow_redirects=False) as r:
                    await r.read()
                    bad += r.status != 302
                lat.append((time.perf_counter() - t0) * 1000)

        cpu0 = _cpu(postmaster)
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - t0
        cpu1 = _cpu(postmaster)
        cpu: dict[str, float] = {}
        for (role, pid), v in cpu1.items():  # per process: a backend that exited meanwhile is left out
            cpu[role] = cpu.get(role, 0.0) + v - cpu0.get((role, pid), 0.0)
        cpu = {k: round(v * 1000 / len(tokens), 3) for k, v in cpu.items()}
    # CPU per redirect of the API process and of PostgreSQL: what the rate would be on cores
    # of their own, whatever else the machine runs
    return {"clicks": len(tokens), "concurrency": concurrency, "redirects_per_s": round(len(tokens) / seconds),
            "p50_ms": pct(lat, 0.5), "p99_ms": pct(lat, 0.99), "non_302": bad,
            **{f"{k}_cpu_ms_per_redirect": v for k, v in cpu.items()}}


def _cpu(postmaster: int | None) -> dict[tuple[str, int], float]:
    """CPU seconds so far of this bench's API process(es) and of PostgreSQL (the postmaster
    and its backends), per (role, pid)."""
    import psutil

    out: dict[tuple[str, int], float] = {}
    procs = [("api", p) for p in psutil.Process().children(recursive=True) if "serve" in " ".join(p.cmdline())]
    if postmaster:
        pm = psutil.Process(postmaster)
        procs += [("postgres", p) for p in [pm, *pm.children(recursive=True)]]
    for role, p in procs:
        try:
            t = p.cpu_times()
            out[(role, p.pid)] = t.user + t.system
        except Exception:  # gone meanwhile: nothing more to count
            continue
    return out


async def _postmaster(dsn: str) -> int | None:
    import psutil

    conn = await asyncpg.connect(dsn)
    try:
        ckpt = await conn.fetchval("SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'")
    finally:
        await conn.close()
    return int(psutil.Process(ckpt).ppid()) if ckpt else None


async def conversions(client: Client, n: int, calls: int) -> dict[str, Any]:
    lat: list[float] = []
    attributed = 0
    for c in range(calls):
        items = [{"id": f"bench-o{c}-{i}", "user_id": f"u{(c * 1000 + i) % n:09d}", "event": "purchase",
                  "value": 9.99, "currency": "EUR"} for i in range(1000)]
        t0 = time.perf_counter()
        res = await client.ok("POST", "/conversions", {"conversions": items})
        lat.append((time.perf_counter() - t0) * 1000)
        attributed += int(res["attributed"])
    return {"calls_of_1000": calls, "p50_ms": pct(lat, 0.5), "max_ms": round(max(lat), 2), "attributed": attributed}

"""Parts of `broadcaster bench` that drive campaigns through the API: one fan-out timed from
the start call to `completed` (its timeline, per-tenth rates and worker RSS), the targets
query pages, and the plot of a fan-out against the ceilings."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from broadcaster.benchparts import Client, RssSampler, pct, progress, tenths


async def targets_query(client: Client) -> dict[str, float]:
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
    return {"first_page_p50_ms": pct(first, 0.5), "last_page_p50_ms": pct(last, 0.5)}


async def fanout(client: Client, cid: str, channel_type: str, n: int, sampler: RssSampler,
                  *, skip_webhook: bool, extra: dict[str, Any] | None = None, where: Any = None,
                  start: dict[str, Any] | None = None) -> dict[str, Any]:
    body = {
        "id": cid, "name": cid, "segment_ids": ["bench"], "sender_id": "sender",
        "create_channels": True, "channel_template": {"type": channel_type},
        "message_template": {"text": "Hi {{ receiver.name }}, I'm {{ sender.name }}!"},
        "skip_webhook": skip_webhook, **(extra or {}),
    }
    await client.ok("POST", "/campaigns", {k: v for k, v in body.items() if v is not None})
    progress(f"fan-out {cid}: start (skip_webhook={skip_webhook})")
    t0 = time.perf_counter()
    if where is not None:  # benchwhere.Where: sampled from the start call to completed
        where.start(t0)
    await client.ok("POST", f"/campaigns/{cid}/start", start or {})
    start_call_s = time.perf_counter() - t0  # the request answers within start_wait_s (planning.py)
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
    timeline.append((seconds, n))
    per = tenths(timeline, n)
    marks = per.pop("marks")
    prof = await where.stop(seconds, marks, per["tenths_recipients_per_s"], n) if where is not None else None
    return {"recipients_per_s": n / seconds, "seconds": seconds, "start_call_s": round(start_call_s, 2),
            "timeline": timeline, **per,
            **({"where": prof} if prof else {}),
            "rss_at_10": rss_at_10 or round(sampler.peak, 1), "rss_at_100": round(sampler.peak, 1)}


def plot(path: str, timeline: list[tuple[float, int]], ceil_seq: float, ceil_hashed: float) -> None:
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
    ax.plot([0, max(xs or [1])], [0, ceil_seq * max(xs or [1])], "--",
            label=f"PostgreSQL ceiling, same rows, sequential keys ({ceil_seq:,.0f}/s)")
    if ceil_hashed:
        ax.plot([0, max(xs or [1])], [0, ceil_hashed * max(xs or [1])], ":",
                label=f"the same with hashed 1:1 channel ids, before 0090 ({ceil_hashed:,.0f}/s)")
    ax.set_ylim(0, max(ys or [1]) * 1.05)
    ax.set_xlabel("seconds since start")
    ax.set_ylabel("messages sent")
    ax.set_title("broadcaster fan-out")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    progress(f"plot written to {path}")



"""A tiny smoke run of `broadcaster bench`: every figure present, sane, and the plot drawn."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import orjson
import pytest

from tests.conftest import ROOT


def test_bench_smoke_prints_the_documented_json(settings, tmp_path):
    env = {**os.environ, "BROADCASTER_DATABASE_URL": settings.database_url,
           "BROADCASTER_REDIS_URL": settings.redis_url, "BROADCASTER_BATCH_SIZE": "500"}
    out_path = tmp_path / "bench.json"
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "broadcaster", "bench", "--recipients", "2000",
             "--json", str(out_path), "--plot", str(tmp_path / "fanout.png")],
            env=env, cwd=ROOT, capture_output=True, timeout=300,
        )
    except subprocess.TimeoutExpired as e:  # say where it stood, not just that it timed out
        pytest.fail("bench did not finish in 300 s; its last progress lines:\n"
                    + (e.stderr or b"").decode(errors="replace")[-3000:])
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    result = orjson.loads(proc.stdout)
    assert orjson.loads(out_path.read_bytes()) == result
    assert b"[bench" in proc.stderr  # progress is shown
    assert (tmp_path / "fanout.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result["recipients"] == 2000
    assert set(result["machine"]) >= {"cpus", "memory_gb", "postgres_version", "redis_version", "python"}
    fan = result["fanout"]
    for key in ("recipients_per_s", "seconds", "ceiling_recipients_per_s", "ratio",
                "ceiling_sequential_ids_recipients_per_s", "ratio_sequential_ids",
                "with_webhooks_recipients_per_s", "worker_peak_rss_mb", "include_mode_recipients_per_s",
                "include_mode_ratio", "channel_segment_recipients_per_s", "channel_segment_ratio"):
        assert fan[key] > 0, (key, fan)
    assert abs(fan["ratio"] - fan["recipients_per_s"] / fan["ceiling_recipients_per_s"]) < 0.01
    assert result["addtargets"]["p50_ms"] > 0 and result["addtargets"]["import_targets_per_s"] > 0
    assert result["targets_query"]["first_page_p50_ms"] > 0
    assert result["targets_query"]["last_page_p50_ms"] > 0
    assert result["webhooks"]["deliveries_per_s"] > 0
    # Delivery completeness is the webhook tests' to prove; the smoke run checks the report.
    assert 0 < result["webhooks"]["delivered"] <= result["webhooks"]["events"]
    assert result["memory"]["rss_mb_at_10pct"] > 0 and result["memory"]["rss_mb_at_100pct"] > 0
    auto = result["triggers_and_policy"]  # broadcaster/benchauto.py (issue 16)
    assert auto["events_post_1000"]["settled"] and auto["events_post_1000"]["p50_ms"] > 0
    e2m = auto["event_to_message"]
    assert e2m["settled"] and e2m["messages"] == e2m["events"] == 2000 and e2m["p99_ms"] > 0, e2m
    assert auto["policy"]["ratio"] > 0


async def test_ceiling_writes_the_ids_a_campaign_writes(pool: Any) -> None:
    """The ceiling's channel ids are the 1:1 distinct channel ids the campaign creates."""
    from broadcaster.benchparts import _ceiling_sql
    from broadcaster.ids import distinct_channel_id

    sql = _ceiling_sql(True)[0]
    expr = sql[sql.index("SELECT u, t, o, ") + len("SELECT u, t, o, "):sql.index(" AS chid")]
    for u in ("u000000001", "a", "zz", "Sender"):
        got = await pool.fetchval(f"SELECT {expr} FROM (VALUES ($1::text)) AS x(u)", u)
        assert got == distinct_channel_id([u, "sender"])

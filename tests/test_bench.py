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
             "--json", str(out_path), "--plot", str(tmp_path / "fanout.png"), "--where"],
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
                "ceiling_hashed_recipients_per_s", "ratio_hashed", "first_tenth_recipients_per_s",
                "last_tenth_recipients_per_s", "last_to_first_tenth", "second_campaign_recipients_per_s",
                "second_campaign_ratio", "with_webhooks_recipients_per_s", "with_webhooks_ratio",
                "worker_peak_rss_mb", "include_mode_recipients_per_s",
                "include_mode_ratio", "channel_segment_recipients_per_s", "channel_segment_ratio"):
        assert fan[key] > 0, (key, fan)
    assert abs(fan["ratio"] - fan["recipients_per_s"] / fan["ceiling_recipients_per_s"]) < 0.01
    assert len(fan["tenths_recipients_per_s"]) == 10 and all(r > 0 for r in fan["tenths_recipients_per_s"])
    assert result["parts"] == ["addtargets", "targets_query", "ceiling", "ceiling_hashed", "fanout", "second",
                               "webhooks", "include", "channels", "funnel", "triggers_and_policy", "hooks_fanout"]
    assert result["disk"]["database_mb"] > 0
    where = result["where"]  # --where: the fan-out's statements sampled, CPU per process
    assert where["samples"] > 0 and set(where["cpu_s"]) == {"worker", "api", "postgres"}
    assert any(s["what"] == "batch write (fanwrite._WRITE)" for s in where["statements"]), where
    assert [t["tenth"] for t in where["tenths"]] == list(range(1, 11)) and where["shared_buffers_mb"] > 0
    assert sum(t["wal_mb"] for t in where["tenths"]) > 0 and where["tenths"][-1]["index_mb_at_end"] > 0
    assert any(t["batch_write_s_per_batch"] > 0 for t in where["tenths"]), where["tenths"]
    assert result["addtargets"]["p50_ms"] > 0 and result["addtargets"]["import_targets_per_s"] > 0
    assert result["targets_query"]["first_page_p50_ms"] > 0
    assert result["targets_query"]["last_page_p50_ms"] > 0
    assert result["webhooks"]["deliveries_per_s"] > 0
    # Delivery completeness is the webhook tests' to prove; the smoke run checks the report.
    assert 0 < result["webhooks"]["delivered"] <= result["webhooks"]["events"]
    assert result["memory"]["rss_mb_at_10pct"] > 0 and result["memory"]["rss_mb_at_100pct"] > 0
    funnel = result["funnel"]  # broadcaster/benchfunnel.py (issue 17): real tokens from the messages
    assert funnel["ratio_to_plain"] > 0 and funnel["follow_link"]["clicks"] == 2000
    assert funnel["plain_again_recipients_per_s"] > 0 and funnel["ratio_to_plain_again"] > 0
    assert funnel["follow_link"]["non_302"] == 0 and funnel["follow_link_one_at_a_time"]["p50_ms"] > 0
    assert funnel["conversions"]["attributed"] == 20_000 and funnel["conversions"]["p50_ms"] > 0
    assert funnel["stats"]["stats_users_clicked"] == 2000 and set(funnel["stats"]["variants"]) == {"a", "b"}
    auto = result["triggers_and_policy"]  # broadcaster/benchauto.py (issue 16)
    assert auto["events_post_1000"]["settled"] and auto["events_post_1000"]["p50_ms"] > 0
    e2m = auto["event_to_message"]
    assert e2m["settled"] and e2m["messages"] == e2m["events"] == 2000 and e2m["p99_ms"] > 0, e2m
    assert auto["policy"]["ratio"] > 0 and auto["policy"]["local_time_ratio"] > 0


async def test_ceilings_write_the_keys_they_name(pool: Any) -> None:
    """hashed: the md5 1:1 channel ids of before migration 0090; sequential: the receiver id
    itself, with the member pair the campaign's channels carry now."""
    from broadcaster.benchparts import _ceiling_sql
    from broadcaster.ids import distinct_channel_id

    for keys in ("hashed", "sequential"):
        sql = _ceiling_sql(keys)[0]
        expr = sql[sql.index("SELECT u, t, o, ") + len("SELECT u, t, o, "):sql.index(" AS chid")]
        for u in ("u000000001", "a", "zz", "Sender"):
            got = await pool.fetchval(f"SELECT {expr} FROM (VALUES ($1::text)) AS x(u)", u)
            assert got == (distinct_channel_id([u, "sender"]) if keys == "hashed" else u)
    assert "pair_lo, pair_hi" in _ceiling_sql("sequential")[0]


def test_tenths_time_each_tenth_from_the_first_message() -> None:
    from broadcaster.benchparts import tenths

    # nothing sent for 2 s (planning), then 100/s for 5 s, then 50/s for the last 2 tenths
    timeline = [(0.5 * k, 0) for k in range(5)] + [(2 + 0.5 * k, 50 * k) for k in range(1, 11)]
    timeline += [(7 + 0.5 * k, 500 + 25 * k) for k in range(1, 9)]
    r = tenths(timeline, 700)
    assert r["planning_s"] == 2.5
    assert r["tenths_recipients_per_s"][1:5] == [100, 100, 100, 100]
    assert r["tenths_recipients_per_s"][-2:] == [50, 50] and r["last_tenth_recipients_per_s"] == 50
    assert r["first_tenth_recipients_per_s"] == 100 and r["last_to_first_tenth"] == 0.5


def test_only_names_known_parts_and_their_order() -> None:
    from broadcaster.bench import PARTS, parts

    assert parts(None) == list(PARTS)
    assert parts("ceiling, fanout,second") == ["ceiling", "fanout", "second"]
    assert parts("fanout,ceiling") == ["ceiling", "fanout"]
    with pytest.raises(SystemExit, match="unknown part"):
        parts("fanout,bogus")
    with pytest.raises(SystemExit, match="add fanout"):
        parts("second")


def test_per_tenth_puts_each_counter_increase_and_background_sample_in_its_tenth() -> None:
    """--where's tenths: a checkpoint requested and an autovacuum of members during the last
    tenth show there and nowhere else; WAL and reads are the counters' increase over each tenth
    (interpolated between the 1 s reads); the batch statement's time is backend-seconds per batch."""
    from broadcaster.benchtenths import Counters, activity_label, per_tenth

    counters = Counters("postgresql://unused")
    # 1,000 recipients in 10 s, a tenth a second; WAL 1 MiB a second, 2 MiB in the last one
    for s in range(12):
        wal = min(s, 9) * 2**20 + max(0, s - 9) * 2 * 2**20
        counters.series.append((float(s), {
            "wal_bytes": float(wal), "ck.num_requested": 1.0 if s >= 10 else 0.0,
            "rel.members.idx_read": 10.0 * max(0, s - 9), "rel.members.vacuums": 1.0 if s >= 10 else 0.0,
            "rel.members.idx_mb": 5.0 * s, "rel.members.heap_mb": 1.0 * s}))
    samples: list[tuple[float, int, tuple[str, ...]]] = []
    for k in range(500):  # 20 ms apart; two backends in the batch write, three in the last tenth
        t = k * 0.02
        bg = () if t < 9 else (
            activity_label("autovacuum worker", None, "autovacuum: VACUUM public.members", "scanning heap") or "",
            activity_label("checkpointer", "CheckpointWriteDelay", "", None) or "")
        samples.append((t, 3 if t >= 9 else 2, bg))
    assert activity_label("checkpointer", "CheckpointerMain", "", None) is None
    out = per_tenth([float(s) for s in range(11)], [100] * 10, 1000, 50, counters, samples)
    assert [e["tenth"] for e in out] == list(range(1, 11))
    assert [e["recipients_per_s"] for e in out] == [100] * 10
    assert [e["checkpoints_requested"] for e in out] == [0.0] * 9 + [1.0]
    assert out[-1]["autovacuums"] == {"members": 1} and all(not e["autovacuums"] for e in out[:-1])
    assert out[-1]["blocks_read"] == {"members": 10} and not out[0]["blocks_read"]
    assert [e["wal_mb"] for e in out] == [1.0] * 9 + [2.0]
    assert out[0]["wal_bytes_per_recipient"] == round(2**20 / 100)
    assert out[0]["batch_write_backends_avg"] == 2 and out[-1]["batch_write_backends_avg"] == 3
    assert out[0]["batch_write_s_per_batch"] == 1.0  # 2 backends x 1 s / 2 batches of 50
    assert out[-1]["background_share"] == {"VACUUM members [scanning heap]": 1.0,
                                           "checkpointer throttled (CheckpointWriteDelay)": 1.0}
    assert not out[0]["background_share"]
    assert out[3]["index_mb_at_end"] == 20 and out[3]["heap_mb_at_end"] == 4

"""What changes from one tenth of a bench fan-out to the next (`--where`): PostgreSQL's
cumulative counters read once a second (checkpoints timed and requested with the buffers
they wrote, WAL bytes and full-page images, relation reads, writes and evictions by backend
type from pg_stat_io, per-table block reads, index sizes, autovacuum and autoanalyze counts)
and, from benchwhere's 20 ms pg_stat_activity samples, the busy share of the checkpointer and
the autovacuum workers (which table, which phase) and the batch statement's time. Each tenth
gets the counters' increase between the times it began and ended (interpolated between the
1 s reads), so a tenth that slows down shows what grew with it."""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import time
from collections import Counter
from typing import Any

import asyncpg
import orjson

# Tables a campaign writes or reads per recipient (benchwhere.TABLES plus the bookkeeping).
TABLES = ("channels", "members", "messages", "campaign_recipients", "campaign_audience", "users",
          "segment_targets", "campaign_batches")

_SNAP = """
SELECT
 (SELECT row_to_json(c)::text FROM (SELECT num_timed, num_requested, num_done, write_time, sync_time,
   buffers_written FROM pg_stat_checkpointer) c) AS ck,
 (SELECT row_to_json(w)::text FROM (SELECT wal_records, wal_fpi, wal_buffers_full FROM pg_stat_wal) w) AS wal,
 (pg_current_wal_lsn() - '0/0'::pg_lsn)::float8 AS lsn,
 (SELECT json_object_agg(backend_type, json_build_object('reads', r, 'writes', w, 'extends', e,
   'evictions', ev))::text FROM (SELECT backend_type, sum(reads) r, sum(writes) w, sum(extends) e,
   sum(evictions) ev FROM pg_stat_io WHERE object = 'relation' GROUP BY backend_type) io) AS io,
 (SELECT json_object_agg(s.relname, json_build_object('heap_read', coalesce(i.heap_blks_read, 0),
   'idx_read', coalesce(i.idx_blks_read, 0), 'idx_mb', pg_indexes_size(s.relid) / 1048576.0,
   'heap_mb', pg_relation_size(s.relid) / 1048576.0, 'vacuums', s.autovacuum_count,
   'analyzes', s.autoanalyze_count))::text
   FROM pg_stat_user_tables s JOIN pg_statio_user_tables i USING (relid)
   WHERE s.relname = ANY($1::text[])) AS rel
"""


def _flat(row: asyncpg.Record) -> dict[str, float]:
    """One read of the counters as name -> number."""
    out: dict[str, float] = {"wal_bytes": float(row["lsn"])}
    for key in ("ck", "wal"):
        for k, v in orjson.loads(row[key] or "{}").items():
            out[f"{key}.{k}"] = float(v or 0)
    for btype, vals in orjson.loads(row["io"] or "{}").items():
        for k, v in vals.items():
            out[f"io.{btype}.{k}"] = float(v or 0)
    for rel, vals in orjson.loads(row["rel"] or "{}").items():
        for k, v in vals.items():
            out[f"rel.{rel}.{k}"] = float(v or 0)
    return out


class Counters:
    """Reads _SNAP every `every` seconds while a run goes: [(seconds since t0, counters)]."""

    def __init__(self, dsn: str, every: float = 1.0) -> None:
        self.dsn, self.every = dsn, every
        self.series: list[tuple[float, dict[str, float]]] = []
        self.t0 = time.perf_counter()
        self.shared_buffers_mb = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _loop(self) -> None:
        conn = await asyncpg.connect(self.dsn)
        try:
            self.shared_buffers_mb = float(await conn.fetchval(
                "SELECT setting::float8 * 8192 / 1048576 FROM pg_settings WHERE name = 'shared_buffers'"))
            while True:
                row = await conn.fetchrow(_SNAP, list(TABLES))
                assert row is not None  # one row of scalar subqueries
                self.series.append((time.perf_counter() - self.t0, _flat(row)))
                await asyncio.sleep(self.every)
        finally:
            await conn.close()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            # one last read so the last tenth ends inside the series
            await asyncio.sleep(self.every)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    def at(self, t: float, key: str) -> float:
        """The counter's value at t, linear between the reads around it."""
        ts = [s[0] for s in self.series]
        i = bisect.bisect_left(ts, t)
        if i <= 0:
            return self.series[0][1].get(key, 0.0) if self.series else 0.0
        if i >= len(ts):
            return self.series[-1][1].get(key, 0.0)
        (ta, a), (tb, b) = self.series[i - 1], self.series[i]
        va, vb = a.get(key, 0.0), b.get(key, 0.0)
        return va + (vb - va) * ((t - ta) / (tb - ta) if tb > ta else 1.0)


def activity_label(backend_type: str, wait: str | None, query: str, phase: str | None) -> str | None:
    """A 20 ms sample of a background process as what it was doing, None when idle."""
    if backend_type == "checkpointer":
        if wait in ("CheckpointerMain", None):
            return None
        return "checkpointer " + ("throttled (CheckpointWriteDelay)" if wait == "CheckpointWriteDelay" else "writing")
    if backend_type == "autovacuum worker":
        what = query.removeprefix("autovacuum: ").replace("public.", "") if query else "autovacuum"
        return f"{what}" + (f" [{phase}]" if phase else "")
    return None


def per_tenth(marks: list[float], rates: list[int], n: int, batch: int, counters: Counters,
              samples: list[tuple[float, int, tuple[str, ...]]]) -> list[dict[str, Any]]:
    """One entry per tenth: its rate (benchparts.tenths'), the batch statement's mean time,
    what the background processes did (share of its 20 ms samples) and what PostgreSQL's
    counters did."""
    out: list[dict[str, Any]] = []
    ts = [s[0] for s in samples]
    for k, (a, b) in enumerate(zip(marks, marks[1:], strict=False)):
        lo, hi = bisect.bisect_left(ts, a), bisect.bisect_left(ts, b)
        chunk = samples[lo:hi]
        ns = max(len(chunk), 1)
        writers = sum(c[1] for c in chunk) / ns
        background: Counter[str] = Counter(lbl for c in chunk for lbl in c[2])

        def d(key: str, a: float = a, b: float = b) -> float:
            return counters.at(b, key) - counters.at(a, key)

        seconds = max(b - a, 1e-6)
        recipients = n / 10
        rels = {key.split(".")[1] for _, snap in counters.series[:1] for key in snap if key.startswith("rel.")}
        entry: dict[str, Any] = {
            "tenth": k + 1, "from_s": round(a, 1), "seconds": round(seconds, 1),
            "recipients_per_s": rates[k],
            # backends inside the batch write on average x the tenth's length = statement-seconds
            "batch_write_backends_avg": round(writers, 2),
            "batch_write_s_per_batch": round(writers * seconds / max(recipients / batch, 1), 3),
            "background_share": {lbl: round(c / ns, 3) for lbl, c in background.most_common(8)},
            "checkpoints_timed": round(d("ck.num_timed"), 1),
            "checkpoints_requested": round(d("ck.num_requested"), 1),
            "checkpoint_buffers_written": round(d("ck.buffers_written")),
            "wal_mb": round(d("wal_bytes") / 2**20, 1),
            "wal_bytes_per_recipient": round(d("wal_bytes") / recipients),
            "wal_fpi_per_recipient": round(d("wal.wal_fpi") / recipients, 3),
            "wal_buffers_full": round(d("wal.wal_buffers_full")),
            "client_reads": round(d("io.client backend.reads")),
            "client_writes": round(d("io.client backend.writes")),
            "client_evictions": round(d("io.client backend.evictions")),
            "bgwriter_writes": round(d("io.background writer.writes")),
            "autovacuum_reads": round(d("io.autovacuum worker.reads")),
            "blocks_read": {r: round(d(f"rel.{r}.heap_read") + d(f"rel.{r}.idx_read")) for r in sorted(rels)},
            "autovacuums": {r: round(d(f"rel.{r}.vacuums")) for r in sorted(rels) if d(f"rel.{r}.vacuums") >= 0.5},
            "autoanalyzes": {r: round(d(f"rel.{r}.analyzes")) for r in sorted(rels) if d(f"rel.{r}.analyzes") >= 0.5},
            "index_mb_at_end": round(sum(counters.at(b, f"rel.{r}.idx_mb") for r in rels)),
            "heap_mb_at_end": round(sum(counters.at(b, f"rel.{r}.heap_mb") for r in rels)),
        }
        entry["blocks_read"] = {r: v for r, v in entry["blocks_read"].items() if v}
        out.append(entry)
    return out

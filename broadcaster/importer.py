"""`broadcaster import-targets SEGMENT_ID FILE`: bulk-load explicit segment targets.

Ids are read from a text file (one a line) or a CSV column, validated locally (bad lines
are reported with their numbers and skipped), and sent through the HTTP API in calls of
up to 10,000 ids with a few calls in flight. Transient failures (connection errors, 5xx,
429 honouring Retry-After) are retried with exponential backoff. Every confirmed batch is
recorded in a small state file, so `--resume` after a crash or Ctrl-C skips them: batches
are numbered by their position in the file, which is the same on every run.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import orjson

from broadcaster.validate import CID_RE, ID_RE

TRANSIENT = {408, 429, 500, 502, 503, 504}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("segment_id", help="an explicit-list segment (created beforehand)")
    p.add_argument("file", help="text file with one id per line, or CSV with --column")
    p.add_argument("--column", help="CSV mode: the header name (or 0-based index) of the id column")
    p.add_argument("--batch-size", type=int, default=10_000, help="ids per call (1..10000)")
    p.add_argument("--concurrency", type=int, default=4, help="calls in flight")
    p.add_argument("--resume", action="store_true", help="skip the batches a previous run confirmed")
    p.add_argument("--state-file", help="progress record (default: FILE.import-state.json)")
    p.add_argument("--max-retries", type=int, default=8, help="attempts per batch beyond the first")
    p.add_argument("--url", default=os.environ.get("BROADCASTER_URL", "http://127.0.0.1:8080"),
                   help="API base URL (env BROADCASTER_URL)")
    p.add_argument("--api-key", default=os.environ.get("BROADCASTER_API_KEY"),
                   help="app key (env BROADCASTER_API_KEY)")
    p.add_argument("--api-secret", default=os.environ.get("BROADCASTER_API_SECRET"),
                   help="app secret for the server token (env BROADCASTER_API_SECRET)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def read_ids(path: Path, column: str | None) -> Iterator[tuple[int, str]]:
    """(line number, raw id) for every non-blank line (CSV: every row but the header)."""
    with path.open(newline="" if column is not None else None, encoding="utf-8", errors="replace") as f:
        if column is None:
            for n, line in enumerate(f, 1):
                v = line.strip()
                if v:
                    yield n, v
            return
        reader = csv.reader(f)
        header = next(reader, None) or []
        if column.isdigit():
            idx = int(column)
        elif column in header:
            idx = header.index(column)
        else:
            raise SystemExit(f"error: column {column!r} is not in the CSV header {header[:20]}")
        for row in reader:
            v = row[idx].strip() if idx < len(row) else ""
            if v:
                yield reader.line_num, v


class State:
    """The confirmed batch numbers, rewritten atomically after each one (small: ints)."""

    def __init__(self, path: Path, key: dict[str, Any]) -> None:
        self.path, self.key = path, key
        self.done: set[int] = set()

    def load(self) -> None:
        if not self.path.exists():
            return
        data = orjson.loads(self.path.read_bytes())
        if data.get("key") != self.key:
            raise SystemExit(
                f"error: {self.path} records another import ({data.get('key')}); drop --resume or"
                " delete it"
            )
        self.done = set(data.get("done", []))

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps({"key": self.key, "done": sorted(self.done)}))
        os.replace(tmp, self.path)


class Progress:
    def __init__(self, total: int, quiet: bool) -> None:
        self.total, self.quiet, self.sent, self.t0, self.last = max(total, 1), quiet, 0, time.monotonic(), 0.0
        self.tty = sys.stderr.isatty()

    def update(self, n: int, final: bool = False) -> None:
        self.sent += n
        now = time.monotonic()
        if self.quiet or (not final and now - self.last < (0.1 if self.tty else 2.0)):
            return
        self.last = now
        rate = self.sent / max(now - self.t0, 1e-6)
        frac = min(self.sent / self.total, 1.0)
        eta = (self.total - self.sent) / rate if rate > 0 else 0
        bar = "#" * int(frac * 30) + "." * (30 - int(frac * 30))
        line = (f"[{bar}] {frac * 100:5.1f}% {self.sent:,}/{self.total:,} ids"
                f"  {rate:,.0f} ids/s  ETA {max(eta, 0):.0f}s")
        print(("\r" if self.tty else "") + line, end="\n" if final or not self.tty else "",
              file=sys.stderr, flush=True)


class Importer:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.base = args.url.rstrip("/")
        self.seg = args.segment_id
        self.added = self.failed = 0
        self.error: str | None = None

    def headers(self) -> dict[str, str]:
        token = jwt.encode({"server": True, "iat": int(time.time()) - 5}, self.args.api_secret, algorithm="HS256")
        return {"Authorization": token, "stream-auth-type": "jwt", "Content-Type": "application/json"}

    async def call(self, http: aiohttp.ClientSession, method: str, path: str, body: Any = None) -> tuple[int, dict[str, Any]]:
        """One API call with retries on transient failures; returns the final status and body."""
        data = orjson.dumps(body) if body is not None else None
        for attempt in range(self.args.max_retries + 1):
            delay = min(30.0, 0.25 * 2**attempt) * (0.5 + random.random())
            try:
                async with http.request(method, self.base + path, params={"api_key": self.args.api_key},
                                        data=data, headers=self.headers()) as r:
                    raw = await r.read()
                    parsed = orjson.loads(raw) if raw else {}
                    if r.status not in TRANSIENT:
                        return r.status, parsed
                    if r.status == 429 and r.headers.get("Retry-After", "").replace(".", "", 1).isdigit():
                        delay = float(r.headers["Retry-After"])
                    reason = f"HTTP {r.status}: {str(parsed.get('message', ''))[:200]}"
            except (TimeoutError, aiohttp.ClientError, orjson.JSONDecodeError) as e:
                reason = f"{type(e).__name__}: {e}"
            if attempt < self.args.max_retries:
                print(f"\nretrying {path} in {delay:.1f}s after {reason}", file=sys.stderr, flush=True)
                await asyncio.sleep(delay)
        raise ConnectionError(f"{method} {path} failed after {self.args.max_retries + 1} attempts: {reason}")

    async def worker(self, http: aiohttp.ClientSession, queue: asyncio.Queue[Any], state: State,
                     progress: Progress) -> None:
        while True:
            item = await queue.get()
            if item is None:
                return
            number, ids = item
            if self.error is None:
                try:
                    st, body = await self.call(http, "POST", f"/segments/{self.seg}/addtargets",
                                               {"target_ids": ids})
                    if st == 200:
                        self.added += int(body.get("added", 0))
                        state.done.add(number)
                        state.save()
                    else:
                        self.failed += 1
                        print(f"\nbatch {number} refused: HTTP {st} {body.get('message')}", file=sys.stderr)
                except ConnectionError as e:
                    self.error = str(e)
            progress.update(len(ids))

    async def run(self) -> int:
        a = self.args
        path = Path(a.file)
        timeout = aiohttp.ClientTimeout(total=120)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            st, body = await self.call(http, "GET", f"/segments/{self.seg}")
            if st != 200:
                print(f"error: segment {self.seg!r}: HTTP {st} {body.get('message')}", file=sys.stderr)
                return 2
            pattern = CID_RE if body["segment"]["type"] == "channel" else ID_RE
            stat = path.stat()
            key = {"segment_id": self.seg, "file": str(path.resolve()), "file_size": stat.st_size,
                   "batch_size": a.batch_size, "column": a.column}
            state = State(Path(a.state_file or f"{a.file}.import-state.json"), key)
            if a.resume:
                state.load()
            with path.open("rb") as f:
                total = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
            progress = Progress(total, a.quiet)
            queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=a.concurrency * 2)
            workers = [asyncio.create_task(self.worker(http, queue, state, progress))
                       for _ in range(a.concurrency)]
            bad = skipped = number = 0
            batch: list[str] = []
            t0 = time.monotonic()

            async def flush() -> None:
                nonlocal number, skipped, batch
                if number in state.done:
                    skipped += 1
                    progress.update(len(batch))
                else:
                    await queue.put((number, batch))
                number, batch = number + 1, []

            for line_no, value in read_ids(path, a.column):
                if self.error is not None:
                    break
                if not pattern.match(value):
                    bad += 1
                    print(f"\nline {line_no}: not a valid {'cid' if pattern is CID_RE else 'id'}:"
                          f" {value[:80]!r} (skipped)", file=sys.stderr)
                    continue
                batch.append(value)
                if len(batch) >= a.batch_size:
                    await flush()
            if batch and self.error is None:
                await flush()
            for _ in workers:
                await queue.put(None)
            await asyncio.gather(*workers)
            progress.update(0, final=True)
            size = None
            if self.error is None:
                st, body = await self.call(http, "GET", f"/segments/{self.seg}")
                size = body.get("segment", {}).get("size")
        summary = {"segment_id": self.seg, "batches": number, "batches_skipped": skipped,
                   "batches_failed": self.failed, "added": self.added, "bad_lines": bad,
                   "size": size, "seconds": round(time.monotonic() - t0, 2), "error": self.error}
        print(orjson.dumps(summary).decode(), flush=True)
        if self.error is not None:
            print(f"error: {self.error}\nrerun with --resume to continue", file=sys.stderr)
            return 1
        return 1 if self.failed else 0


def run(args: argparse.Namespace) -> int:
    if not args.api_key or not args.api_secret:
        print("error: --api-key/--api-secret (or BROADCASTER_API_KEY/BROADCASTER_API_SECRET) are required",
              file=sys.stderr)
        return 2
    if not 1 <= args.batch_size <= 10_000 or args.concurrency < 1:
        print("error: --batch-size must be 1..10000 and --concurrency >= 1", file=sys.stderr)
        return 2
    try:
        return asyncio.run(Importer(args).run())
    except KeyboardInterrupt:
        print("\ninterrupted: rerun with --resume to continue", file=sys.stderr)
        return 130

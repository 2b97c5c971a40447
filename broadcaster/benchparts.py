"""Pieces of `broadcaster bench`: an API client, a webhook sink, an RSS sampler, the ceiling."""

from __future__ import annotations

import asyncio
import re
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import asyncpg
import jwt
import orjson

from broadcaster.devstack import free_port
from broadcaster.ids import message_id_prefix


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return round(s[min(len(s) - 1, int(q * len(s)))], 2) if s else 0.0


def progress(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Client:
    """The API as a backend calls it (api_key + server JWT)."""

    def __init__(self, base_url: str, api_key: str, api_secret: str) -> None:
        self.base = base_url.rstrip("/")
        self.key = api_key
        self.headers = {
            "Authorization": jwt.encode({"server": True}, api_secret, algorithm="HS256"),
            "stream-auth-type": "jwt", "Content-Type": "application/json",
        }
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=64), timeout=aiohttp.ClientTimeout(total=300)
        )

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, dict[str, Any]]:
        data = orjson.dumps(body) if body is not None else None
        async with self.session.request(method, self.base + path, params={"api_key": self.key},
                                        headers=self.headers, data=data) as r:
            raw = await r.read()
            return r.status, (orjson.loads(raw) if raw else {})

    async def ok(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        status, out = await self.call(method, path, body)
        if status >= 300:
            raise RuntimeError(f"{method} {path} -> {status}: {out}")
        return out

    async def close(self) -> None:
        await self.session.close()


_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"
_LENGTH = re.compile(rb"content-length:\s*(\d+)")
_TYPE = re.compile(rb'"type":\s*"([a-z.]+)"')


class _SinkProtocol(asyncio.Protocol):
    """HTTP/1.1 keep-alive POST receiver: answers 200 to each request and counts it.
    Deliberately minimal so the receiver costs little of the 2 cores the sender is measured on."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            head_end = self.buf.find(b"\r\n\r\n")
            if head_end < 0:
                return
            m_len = _LENGTH.search(self.buf[:head_end].lower())
            length = int(m_len.group(1)) if m_len else 0
            end = head_end + 4 + length
            if len(self.buf) < end:
                return
            body, self.buf = self.buf[head_end + 4:end], self.buf[end:]
            m = _TYPE.search(body)
            t = m.group(1).decode() if m else "?"
            self.sink.count += 1
            self.sink.by_type[t] = self.sink.by_type.get(t, 0) + 1
            assert self.transport is not None
            self.transport.write(_OK)


@dataclass
class Sink:
    """A local webhook receiver that answers 200 at once and counts what it got, by type."""

    port: int = field(default_factory=free_port)
    count: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    server: asyncio.base_events.Server | None = None

    async def start(self) -> Sink:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: _SinkProtocol(self), "127.0.0.1", self.port)
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def stop(self) -> None:
        if self.server:
            self.server.close()
            await self.server.wait_closed()


class RssSampler:
    """Peak RSS (MiB) of a set of processes, sampled while a run goes."""

    def __init__(self, pids: list[int]) -> None:
        import psutil

        self.procs = [psutil.Process(p) for p in pids]
        self.peak = 0.0

    def sample(self) -> float:
        total = 0.0
        for p in self.procs:
            try:
                total = max(total, p.memory_info().rss / 2**20)
            except Exception:  # a process that went away has no RSS to report
                continue
        self.peak = max(self.peak, total)
        return total


CEILING_TABLES = ("channels", "members", "messages", "campaign_recipients")
CEILING_KEYS = ("sequential", "hashed")


def _ceiling_sql(keys: str) -> list[str]:
    """The four INSERTs of one ceiling batch: $1 receiver ids, $2 texts, $3 message id prefix.
    sequential: the rows a campaign writes since migration 0090 (a channel with its member
    pair, 2 members, a message, a ledger row) with sequential keys, the best case for every
    index; hashed: the layout before it, 1:1 channel ids md5 of the member pair (random index
    positions, no pair key) and time-ordered message ids."""
    if keys == "hashed":
        chid = ("'!members-' || md5(CASE WHEN u COLLATE \"C\" < 'sender' COLLATE \"C\""
                " THEN u || ',sender' ELSE 'sender,' || u END)")
        mid, lo, hi = "$3 || lpad(to_hex(o), 5, '0')", "NULL", "NULL"
    else:
        chid, mid, lo, hi = "u", "u", "'sender'", "u"  # 'sender' < 'u...': the pair grows at its right edge
    src = f"SELECT u, t, o, {chid} AS chid FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS x(u, t, o)"
    return [
        "INSERT INTO bench_channels (app_id, cid, type, id, created_by_id, member_count, pair_lo, pair_hi)"
        f" SELECT 0, 'messaging:' || chid, 'messaging', chid, 'sender', 2, {lo}, {hi} FROM ({src}) r",
        "INSERT INTO bench_members (app_id, cid, user_id)"
        f" SELECT 0, 'messaging:' || chid, m FROM ({src}) r, LATERAL (VALUES (u), ('sender')) AS x(m)",
        "INSERT INTO bench_messages (app_id, id, cid, user_id, text, campaign_id)"
        f" SELECT 0, {mid}, 'messaging:' || chid, 'sender', t, 'bench' FROM ({src}) r",
        "INSERT INTO bench_campaign_recipients (app_id, campaign_id, target_id, user_id, channel_cid,"
        " message_id, status, sent_at)"
        f" SELECT 0, 'bench', u, u, 'messaging:' || chid, {mid}, 'sent', now() FROM ({src}) r",
    ]


async def ceiling(dsn: str, n: int, batch: int, connections: int, *, keys: str = "sequential") -> float:
    """Recipients/s at which this PostgreSQL takes the rows a campaign writes per recipient
    (1 channel, 2 members, 1 message, 1 ledger row), set-based, one transaction per batch,
    into scratch copies of the real tables (same columns and indexes), no ON CONFLICT."""
    conn = await asyncpg.connect(dsn)
    try:
        for t in CEILING_TABLES:
            await conn.execute(f"DROP TABLE IF EXISTS bench_{t}")
            await conn.execute(f"CREATE TABLE bench_{t} (LIKE {t} INCLUDING ALL)")
    finally:
        await conn.close()
    sql = _ceiling_sql(keys)
    ids = [f"u{i:09d}" for i in range(n)]
    chunks = [ids[i:i + batch] for i in range(0, n, batch)]
    queue: asyncio.Queue[list[str]] = asyncio.Queue()
    for c in chunks:
        queue.put_nowait(c)

    async def worker() -> None:
        c = await asyncpg.connect(dsn)
        try:
            while not queue.empty():
                chunk = queue.get_nowait()
                texts = [f"Hi User {u[1:]}, I'm Sender!" for u in chunk]
                prefix = message_id_prefix()
                async with c.transaction():
                    for q in sql:
                        await c.execute(q, chunk, texts, *([prefix] if "$3" in q else []))
        finally:
            await c.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    seconds = time.perf_counter() - started
    conn = await asyncpg.connect(dsn)
    try:
        for t in CEILING_TABLES:
            await conn.execute(f"DROP TABLE IF EXISTS bench_{t}")
    finally:
        await conn.close()
    return n / seconds


def tenths(timeline: list[tuple[float, int]], n: int) -> dict[str, Any]:
    """Rates per tenth of a campaign from its (seconds since start, messages sent) samples:
    the time each tenth of n was crossed (interpolated between samples). The first tenth is
    timed from the first sample with messages sent (`planning_s` before it: the audience is
    fixed at start), counting only those sent after it, so last/first compares writing with
    writing."""
    def crossed(target: float) -> float:
        prev = (0.0, 0)
        for t, sent in timeline:
            if sent >= target:
                t0, s0 = prev
                return t0 + (t - t0) * ((target - s0) / (sent - s0)) if sent > s0 else t
            prev = (t, sent)
        return timeline[-1][0] if timeline else 0.0

    started, done0 = next(((t, sent) for t, sent in timeline if sent > 0), (0.0, 0))
    if done0 >= n / 10:  # a tenth within one sample (a small run): from the last sample before it
        started, done0 = max((t for t, sent in timeline if sent == 0), default=0.0), 0
    marks = [started] + [crossed(n * k / 10) for k in range(1, 11)]
    rates = [(n / 10 - (done0 if k == 0 else 0)) / max(b - a, 1e-6)
             for k, (a, b) in enumerate(zip(marks, marks[1:], strict=False))]
    return {"marks": marks, "planning_s": round(started, 2), "tenths_recipients_per_s": [round(r) for r in rates],
            "first_tenth_recipients_per_s": round(rates[0]), "last_tenth_recipients_per_s": round(rates[-1]),
            "last_to_first_tenth": round(rates[-1] / rates[0], 3) if rates[0] else 0.0}

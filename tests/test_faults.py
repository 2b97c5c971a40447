"""Dependencies going away mid-campaign (SPEC 9): PostgreSQL crashed (`pg_ctl stop -m
immediate`) and restarted, Redis killed and started empty on the same port, and both in one
campaign. A `broadcaster serve` and a `broadcaster worker` process run on a PostgreSQL and a
Redis of their own (this test crashes them); webhooks go to a local receiver. The campaign
completes with every recipient exactly once, every message.new delivered, and neither
process ever exits."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest

from broadcaster import devstack
from broadcaster.devstack import free_port
from broadcaster.migrate import migrate
from broadcaster.settings import Settings
from broadcaster.store import apps
from tests.conftest import RUN_DIR
from tests.helpers import Creds, await_for
from tests.test_webhook_delivery import Receiver

N = 4_000
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Stack:
    dir: Path
    pg: devstack.Postgres
    redis: devstack.Redis
    dsn: str
    creds: Creds
    env: dict[str, str]
    url: str
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, *args: str) -> None:
        log = (self.dir / f"{name}.log").open("wb")
        self.procs[name] = subprocess.Popen([sys.executable, "-m", "broadcaster", *args],
                                            env=self.env, cwd=ROOT, stderr=log, stdout=log)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n" + p.read_text(errors="replace")[-4000:]
                         for p in sorted(self.dir.glob("*.log")))


@pytest.fixture
def stack() -> Iterator[Stack]:
    base = RUN_DIR / f"faults-{uuid.uuid4().hex[:8]}"
    pg = devstack.start_postgres(base / "pg", throwaway=True)
    redis = devstack.start_redis(base / "redis")

    async def prepare() -> tuple[str, Creds]:
        await devstack.ensure_database(pg.admin_url, "faults")
        dsn = pg.url_for("faults")
        await migrate(dsn)
        conn = await asyncpg.connect(dsn)
        try:
            row = await apps.create(conn, "faults")
        finally:
            await conn.close()
        return dsn, Creds(row.id, row.api_key, row.api_secret)

    dsn, creds = asyncio.run(prepare())
    port = free_port()
    # A configured cursor secret, as the README asks for production: without one, serve and
    # worker first wait for PostgreSQL to read the installation's generated key.
    settings = Settings(database_url=dsn, redis_url=redis.url, port=port, batch_size=200,
                        cursor_secret="faults-cursor-secret-of-this-installation",
                        queue_name=f"bc:faults:{uuid.uuid4().hex[:8]}", log_level="INFO")
    env = {**os.environ, **settings.to_env(), "BROADCASTER_WEBHOOK_ALLOW_PRIVATE": "1"}
    s = Stack(base, pg, redis, dsn, creds, env, f"http://127.0.0.1:{port}")
    try:
        yield s
    finally:
        print(s.logs())  # pytest shows it only when the test failed
        devstack.stop_processes(list(s.procs.values()))
        s.redis.stop()
        pg.stop()
        shutil.rmtree(base, ignore_errors=True)


class Http:
    def __init__(self, session: aiohttp.ClientSession, stack: Stack) -> None:
        self.session, self.stack = session, stack

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, dict[str, Any]]:
        c = self.stack.creds
        async with self.session.request(
            method, self.stack.url + path, params={"api_key": c.api_key},
            headers={"Authorization": c.token(), "stream-auth-type": "jwt"},
            data=orjson.dumps(body) if body is not None else None,
            timeout=aiohttp.ClientTimeout(total=10),
        ) as r:
            raw = await r.read()
            return r.status, orjson.loads(raw) if raw else {}

    async def stats(self, cid: str) -> dict[str, Any] | None:
        try:
            st, body = await self.call("GET", f"/campaigns/{cid}")
        except aiohttp.ClientError:
            return None
        return {"status": body["campaign"]["status"], **body["campaign"]["stats"]} if st == 200 else None


@pytest.fixture
async def http(stack: Stack) -> AsyncIterator[Http]:
    async with aiohttp.ClientSession() as s:
        yield Http(s, stack)


async def _db(stack: Stack, sql: str, *args: Any) -> Any:
    conn = await asyncpg.connect(stack.dsn)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def _users(stack: Stack, n: int, rate: int) -> None:
    await _db(stack, "INSERT INTO users (app_id, id, name) SELECT $1, 'r' || lpad(i::text, 6, '0'),"
              " 'R' || i FROM generate_series(1, $2) i", stack.creds.app_id, n)
    await _db(stack, "INSERT INTO users (app_id, id, name) VALUES ($1, 'boss', 'Boss')", stack.creds.app_id)
    await _db(stack, "UPDATE apps SET settings = settings || jsonb_build_object('campaign_send_rate', $1::int)", rate)


async def _start_campaign(stack: Stack, http: Http, receiver: Receiver, cid: str) -> None:
    st, body = await http.call("PATCH", "/app", {"webhook_url": receiver.url})
    assert st == 200, body
    st, body = await http.call("POST", "/segments", {"id": "everyone", "type": "user", "all_users": True})
    assert st in (200, 201), body
    st, body = await http.call("POST", "/campaigns", {
        "id": cid, "sender_id": "boss", "segment_ids": ["everyone"], "skip_webhook": False,
        "message_template": {"text": "Hello {{ receiver.name }}"}, "create_channels": True,
        "channel_template": {"type": "messaging"},
    })
    assert st == 201, body
    st, body = await http.call("POST", f"/campaigns/{cid}/start")
    assert st == 200, body


async def _ready(http: Http) -> bool:
    try:
        st, _ = await http.call("GET", "/readyz")
    except aiohttp.ClientError:
        return False
    return st == 200


async def _sent_at_least(http: Http, cid: str, n: int) -> bool:
    s = await http.stats(cid)
    return s is not None and s["stats_messages_sent"] >= n


async def _crash_postgres(stack: Stack, http: Http) -> None:
    stack.pg.crash()
    # The API answers 503 in the error shape (code 80, never -1) while PostgreSQL is down.
    st, body = await http.call("GET", f"/campaigns/{'x'}")
    assert st == 503 and body["code"] == 80 and body["StatusCode"] == 503, body
    assert "database" in body["message"] and body["duration"].endswith("ms"), body
    st, body = await http.call("GET", "/readyz")
    assert st == 503 and body["checks"]["redis"] == "ok", body
    st, _ = await http.call("GET", "/healthz")
    assert st == 200
    stack.pg.restart()
    # Recovered by itself, and no dead connection is handed out: 20 concurrent requests
    # (spread over the API's whole pool) all succeed once /readyz does.
    await await_for(lambda: _ready(http), timeout=30)
    answers = await asyncio.gather(*(http.call("GET", "/app") for _ in range(20)))
    assert [st for st, _ in answers] == [200] * 20, answers


async def _kill_redis(stack: Stack, http: Http, cid: str) -> None:
    lost = "worker lost a dependency; restarting"
    before = _log(stack, "worker").count(lost)
    stack.redis.kill()
    # The API keeps serving what needs only PostgreSQL; readiness reports Redis.
    s = await http.stats(cid)
    assert s is not None and s["status"] == "in_progress", s
    st, body = await http.call("GET", "/readyz")
    assert st == 503 and body["checks"]["postgres"] == "ok", body
    # Work started while Redis is down is saved; the workers pick it up once it is back.
    st, body = await http.call("POST", "/segments", {
        "id": "three", "type": "user", "filter": {"id": {"$in": ["r000001", "r000002", "r000003"]}}})
    assert st in (200, 201), body
    st, body = await http.call("POST", "/campaigns", {
        "id": "during", "sender_id": "boss", "segment_ids": ["three"], "skip_webhook": True,
        "message_template": {"text": "Hi"}, "create_channels": True,
        "channel_template": {"type": "messaging"}})
    assert st == 201, body
    st, body = await http.call("POST", "/campaigns/during/start")
    assert st == 200 and body["campaign"]["status"] == "in_progress", body
    # Down long enough for the worker to notice (arq's own loop exits at this point).
    await await_for(lambda: _async(_log(stack, "worker").count(lost) > before), timeout=30)
    stack.redis = stack.redis.restart()


@pytest.mark.parametrize("faults", [["postgres"], ["redis"], ["postgres", "redis"]])
async def test_campaign_survives_dependency_faults(stack: Stack, http: Http, faults: list[str]) -> None:
    receiver = await Receiver().start()
    cid = "faulty"
    try:
        # A send rate stretches the campaign over ~4 s so that the faults land mid-run.
        await _users(stack, N, 1000)
        stack.start("api", "serve")
        stack.start("worker", "worker")
        await await_for(lambda: _ready(http), timeout=30)
        await _start_campaign(stack, http, receiver, cid)
        for i, fault in enumerate(faults):
            await await_for(lambda at=(i + 1) * N // 5: _sent_at_least(http, cid, at), timeout=30)
            if fault == "postgres":
                await _crash_postgres(stack, http)
            else:
                await _kill_redis(stack, http, cid)
        # Both processes reconnect by themselves and the campaign completes.
        done = await await_for(lambda: _completed(http, cid), timeout=90)
        if "redis" in faults:
            during = await await_for(lambda: _completed(http, "during"), timeout=60)
            assert during["stats_messages_sent"] == 3, during
        await await_for(lambda: _delivered(receiver), timeout=60)
    finally:
        await receiver.stop()

    per = await _db(stack, "SELECT count(*) AS msgs, count(DISTINCT cid) AS chans,"
                    " count(DISTINCT user_id) AS users FROM messages WHERE campaign_id = $1", cid)
    ledger = await _db(stack, "SELECT status, count(*) FROM campaign_recipients"
                       " WHERE campaign_id = $1 GROUP BY status", cid)
    assert dict(per[0]) == {"msgs": N, "chans": N, "users": 1}, dict(per[0])  # 1 sender
    assert {r[0]: r[1] for r in ledger} == {"sent": N}
    assert done["stats_messages_sent"] == done["stats_recipients_total"] == N, done
    # Every message.new arrived (receivers de-duplicate by X-Webhook-Id), one per message.
    events = _message_new(receiver, cid)
    mids = {e["message"]["id"] for e in events.values()}
    assert len(events) == len(mids) == N
    stored = await _db(stack, "SELECT id FROM messages WHERE campaign_id = $1", cid)
    assert mids == {r[0] for r in stored}
    assert {n: p.poll() for n, p in stack.procs.items()} == {"api": None, "worker": None}, stack.logs()


async def test_processes_started_while_postgres_and_redis_are_down_wait_for_them(
        stack: Stack, http: Http) -> None:
    await _users(stack, 300, 0)
    stack.pg.crash()
    stack.redis.kill()
    stack.start("api", "serve")
    stack.start("worker", "worker")
    stack.start("stopped", "worker")
    # The API serves at once: healthz 200, everything needing PostgreSQL 503 (code 80).
    await await_for(lambda: _answers(http, "/healthz"), timeout=30)
    st, body = await http.call("GET", "/app")
    assert st == 503 and body["code"] == 80 and "database" in body["message"], body
    st, body = await http.call("GET", "/readyz")
    assert st == 503 and body["checks"]["postgres"].startswith("error"), body
    assert body["checks"]["redis"].startswith("error"), body
    # Workers wait with backoff, and a signal still stops one at once (exit status 0).
    for name in ("worker", "stopped"):
        await await_for(lambda n=name: _log_has(stack, n, "worker lost a dependency"), timeout=30)
    stack.procs["stopped"].terminate()
    assert stack.procs["stopped"].wait(10) == 0, stack.logs()
    del stack.procs["stopped"]
    stack.redis = stack.redis.restart()
    stack.pg.restart()
    await await_for(lambda: _ready(http), timeout=30)
    st, body = await http.call("GET", "/app")
    assert st == 200, body
    receiver = await Receiver().start()
    try:
        await _start_campaign(stack, http, receiver, "late")
        done = await await_for(lambda: _completed(http, "late"), timeout=60)
    finally:
        await receiver.stop()
    assert done["stats_messages_sent"] == 300, done
    assert {n: p.poll() for n, p in stack.procs.items()} == {"api": None, "worker": None}, stack.logs()


async def test_idle_worker_is_quiet_at_info(stack: Stack) -> None:
    """Periodic jobs that found nothing log at DEBUG (SPEC 9): an idle worker at INFO says
    only that it started."""
    port = free_port()
    stack.start("worker", "worker", "--metrics-port", str(port))

    async def ticks() -> bool:
        text = await _metrics(port)
        if text is None:
            return False
        runs = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                if line.startswith("broadcaster_jobs_total{") and "tick" in line and 'outcome="ok"' in line]
        return len(runs) >= 2 and min(runs) >= 3

    await await_for(ticks, timeout=30)
    lines = [orjson.loads(line) for line in _log(stack, "worker").splitlines() if line.startswith("{")]
    info = [x["msg"] for x in lines if x["level"] not in ("debug",)]
    assert all(m.startswith(("Starting worker for", "redis_version=")) for m in info), info
    assert stack.procs["worker"].poll() is None


async def _metrics(port: int) -> str | None:
    """The worker's /metrics text, or None while it does not answer yet."""
    async with aiohttp.ClientSession() as s:
        try:
            async with s.get(f"http://127.0.0.1:{port}/metrics") as r:
                return await r.text()
        except aiohttp.ClientError:
            return None


async def _job_runs(port: int, job: str, outcome: str) -> float:
    text = await _metrics(port)
    if text is None:
        return -1.0
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("broadcaster_jobs_total{") and f'function="{job}"' in line
               and f'outcome="{outcome}"' in line)


async def test_periodic_jobs_say_an_outage_once_not_every_tick(stack: Stack) -> None:
    """PostgreSQL down for a while: the 1 s tick fails every second, but the worker's log says
    so once per job (no traceback a second), and once more when the job runs again."""
    port = free_port()
    stack.start("worker", "worker", "--metrics-port", str(port))
    tick = "cron:campaign_tick"
    await await_for(lambda: _async_ge(_job_runs(port, tick, "ok"), 2), timeout=30)
    stack.pg.crash()
    try:
        await await_for(lambda: _async_ge(_job_runs(port, tick, "failed"), 5), timeout=60)
        log = _log(stack, "worker")
        paused = [orjson.loads(x) for x in log.splitlines()
                  if x.startswith("{") and "periodic job paused by an outage" in x]
        assert [p["job"] for p in paused].count(tick) == 1, paused
        assert all(p["dependency"] == "the database" for p in paused), paused
        traced = [(x["logger"], x["msg"]) for x in map(orjson.loads, filter(lambda x: x.startswith("{"), log.splitlines()))
                  if "Traceback" in str(x.get("exc", ""))]
        assert traced == [], traced
    finally:
        stack.pg.restart()
    await await_for(lambda: _log_has(stack, "worker", "periodic job running again"), timeout=60)
    assert stack.procs["worker"].poll() is None


async def _async_ge(value: Any, at_least: float) -> bool:
    return float(await value) >= at_least


async def _answers(http: Http, path: str) -> bool:
    try:
        st, _ = await http.call("GET", path)
    except aiohttp.ClientError:
        return False
    return st == 200


async def _log_has(stack: Stack, name: str, text: str) -> bool:
    return text in _log(stack, name)


def _log(stack: Stack, name: str) -> str:
    return (stack.dir / f"{name}.log").read_text(errors="replace")


async def _async(v: bool) -> bool:
    return v


async def _delivered(receiver: Receiver) -> bool:
    return len(_message_new(receiver, "faulty")) >= N


def _message_new(receiver: Receiver, cid: str) -> dict[str, dict[str, Any]]:
    return {g["headers"]["X-Webhook-Id"]: g["event"] for g in receiver.got
            if g["event"]["type"] == "message.new" and g["event"]["message"]["campaign_id"] == cid}


async def _completed(http: Http, cid: str) -> dict[str, Any] | None:
    s = await http.stats(cid)
    return s if s is not None and s["status"] == "completed" else None


def test_what_counts_as_an_outage() -> None:
    """The API's 503 and the worker's restart share one definition (broadcaster.outages)."""
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import ResponseError, WatchError

    from broadcaster import outages

    def chained(outer: Exception, inner: Exception) -> Exception:
        try:
            try:
                raise inner
            except Exception:
                raise outer  # noqa: B904 (redis-py raises it this way)
        except Exception as e:
            return e

    assert outages.dependency(ConnectionRefusedError()) == outages.DATABASE
    assert outages.dependency(asyncpg.exceptions.CannotConnectNowError("starting up")) == outages.DATABASE
    assert outages.dependency(asyncpg.exceptions.ConnectionDoesNotExistError("closed")) == outages.DATABASE
    assert outages.dependency(asyncpg.InterfaceError("connection is closed")) == outages.DATABASE
    assert outages.dependency(RedisConnectionError("refused")) == outages.QUEUE
    assert outages.dependency(chained(WatchError("watch"), RedisConnectionError("reset"))) == outages.QUEUE
    # Bugs and bad queries are not outages: they stay 500 / end the worker.
    assert outages.dependency(asyncpg.exceptions.UndefinedColumnError("no such column")) is None
    assert outages.dependency(asyncpg.exceptions.QueryCanceledError("statement timeout")) is None
    assert outages.dependency(asyncpg.InterfaceError("another operation is in progress")) is None
    assert outages.dependency(ResponseError("WRONGTYPE")) is None
    assert outages.dependency(ValueError("x")) is None

"""The package as a user installs it (issue 11 item 7, SPEC 9): a wheel built from this tree,
installed with its dependencies into a fresh venv, run from a directory with no source
checkout: `broadcaster migrate` on an empty database, `app create`, `serve` (healthz, an
authenticated GET /app) and `worker` (a small campaign completes)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import jwt
import pytest

from broadcaster.devstack import free_port, stop_processes
from tests.conftest import _db_url

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """bin/ of a fresh venv holding the wheel and its dependencies (from pip's cache)."""
    base = tmp_path_factory.mktemp("pkg")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(base / "dist"),
                    str(ROOT)], check=True, timeout=300)
    wheels = list((base / "dist").glob("broadcaster-*.whl"))
    assert len(wheels) == 1, wheels
    venv = base / "venv"
    # No pip inside the venv: this process's pip installs into it (saves ~4 s of ensurepip).
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
                    "-q", "--no-compile", str(wheels[0])], check=True, timeout=600)
    return venv / "bin"


@pytest.fixture
def empty_db(pg_admin_url: str) -> Iterator[str]:
    """A database nothing has migrated."""
    name = f"pkg_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(pg_admin_url, f"CREATE DATABASE {name}"))
    yield _db_url(pg_admin_url, name)
    asyncio.run(_admin(pg_admin_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


async def _admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _env(dsn: str, redis_url: str, port: int) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items()
            if not k.startswith(("BROADCASTER_", "PYTHON", "VIRTUAL_ENV"))}
    return {**keep, "BROADCASTER_DATABASE_URL": dsn, "BROADCASTER_REDIS_URL": redis_url,
            "BROADCASTER_PORT": str(port), "BROADCASTER_QUEUE_NAME": f"bc:pkg:{uuid.uuid4().hex[:8]}"}


def _get(url: str, token: str | None = None, body: Any = None, method: str = "GET") -> tuple[int, Any]:
    req = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Authorization": token} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _poll(fn: Any, timeout: float) -> Any:
    deadline = time.time() + timeout
    while True:
        try:
            v = fn()
        except OSError:
            v = None
        if v:
            return v
        if time.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value {v!r})")
        time.sleep(0.1)


def test_wheel_installs_migrates_serves_and_works(installed: Path, empty_db: str, redis_url: str,
                                                  tmp_path: Path) -> None:
    exe = str(installed / "broadcaster")
    port = free_port()
    env = _env(empty_db, redis_url, port)
    # Run from an empty directory: nothing of the source tree is importable.
    run = {"env": env, "cwd": tmp_path, "capture_output": True, "text": True, "timeout": 120}
    where = subprocess.run([str(installed / "python"), "-c", "import broadcaster; print(broadcaster.__file__)"],
                           check=True, **run)  # type: ignore[call-overload]
    assert where.stdout.startswith(str(installed.parent)), where.stdout

    out = subprocess.run([exe, "migrate"], **run)  # type: ignore[call-overload]
    assert out.returncode == 0, out.stderr
    applied = json.loads(out.stdout.strip().splitlines()[-1])["applied"]
    shipped = sorted(p.name for p in (ROOT / "broadcaster" / "migrations").glob("*.sql"))
    assert applied == shipped, applied

    out = subprocess.run([exe, "app", "create", "--name", "pkg"], **run)  # type: ignore[call-overload]
    assert out.returncode == 0, out.stderr
    creds = json.loads(out.stdout)
    token = jwt.encode({"server": True}, creds["api_secret"], algorithm="HS256")

    logs = tmp_path / "logs"
    logs.mkdir()
    procs = [subprocess.Popen([exe, name], env=env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                              stderr=(logs / f"{name}.log").open("wb")) for name in ("serve", "worker")]
    base = f"http://127.0.0.1:{port}"
    try:
        assert _poll(lambda: _get(base + "/healthz")[0] == 200, 30)
        st, body = _get(f"{base}/app?api_key={creds['api_key']}", token)
        assert st == 200 and body["app"]["name"] == "pkg", body
        # the dashboard's templates and static files ship in the wheel
        with urllib.request.urlopen(f"{base}/dashboard/signin", timeout=10) as r:
            page = r.read().decode()
        assert r.status == 200 and "<h1>Sign in</h1>" in page, page[:500]
        css = re.search(r'href="(/dashboard/static/dash\.css[^"]*)"', page)
        assert css is not None, page[:500]
        with urllib.request.urlopen(base + css.group(1).replace("&amp;", "&"), timeout=10) as r:
            assert r.status == 200 and b":focus-visible" in r.read()
        # The worker from the wheel runs a campaign to completion.
        asyncio.run(_admin(empty_db, "INSERT INTO users (app_id, id, name) SELECT a.id, u, u FROM apps a,"
                                     " unnest(ARRAY['boss', 'u1', 'u2', 'u3']) u"))
        q = f"?api_key={creds['api_key']}"
        st, body = _get(f"{base}/segments{q}", token, {"id": "all", "type": "user", "all_users": True}, "POST")
        assert st in (200, 201), body
        st, body = _get(f"{base}/campaigns{q}", token, {
            "id": "hello", "sender_id": "boss", "segment_ids": ["all"], "create_channels": True,
            "message_template": {"text": "Hi {{ receiver.name }}"}, "channel_template": {"type": "messaging"},
        }, "POST")
        assert st == 201, body
        st, body = _get(f"{base}/campaigns/hello/start{q}", token, {}, "POST")
        assert st == 200, body
        done = _poll(lambda: (lambda b: b if b[1]["campaign"]["status"] == "completed" else None)(
            _get(f"{base}/campaigns/hello{q}", token)), 60)
        stats = done[1]["campaign"]["stats"]
        # The sender is not one of its own recipients.
        assert stats["stats_messages_sent"] == stats["stats_recipients_total"] == 3, stats
        assert [p.poll() for p in procs] == [None, None]
    except AssertionError:
        for f in sorted(logs.glob("*.log")):
            print(f.name, f.read_text(errors="replace")[-3000:])
        raise
    finally:
        stop_processes(procs)

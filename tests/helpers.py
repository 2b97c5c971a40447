"""Test helpers: an authenticated API caller over aiohttp's test client, and a live server."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from typing import Any

import jwt
import orjson
from aiohttp import web
from aiohttp.test_utils import TestClient

from broadcaster.app import create_app
from broadcaster.devstack import free_port
from broadcaster.settings import Settings


@dataclass
class Creds:
    app_id: int
    api_key: str
    api_secret: str

    def token(self, **claims: Any) -> str:
        return jwt.encode({"server": True, **claims}, self.api_secret, algorithm="HS256")


class Api:
    """Calls the API as a backend would: api_key query parameter + server JWT."""

    def __init__(self, client: TestClient, creds: Creds) -> None:
        self.client = client
        self.creds = creds

    async def request(
        self, method: str, path: str, json: Any = None, *, params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None, data: bytes | None = None,
    ) -> tuple[int, dict[str, Any]]:
        q = {"api_key": self.creds.api_key, **(params or {})}
        h = {"Authorization": self.creds.token(), "stream-auth-type": "jwt",
             "Content-Type": "application/json", **(headers or {})}
        body = data if data is not None else (orjson.dumps(json) if json is not None else None)
        resp = await self.client.request(method, path, params=q, headers=h, data=body)
        raw = await resp.read()
        parsed = orjson.loads(raw) if raw else {}
        self.last_headers = resp.headers
        return resp.status, parsed

    async def get(self, path: str, **kw: Any) -> tuple[int, dict[str, Any]]:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, json: Any = None, **kw: Any) -> tuple[int, dict[str, Any]]:
        return await self.request("POST", path, json, **kw)

    async def put(self, path: str, json: Any = None, **kw: Any) -> tuple[int, dict[str, Any]]:
        return await self.request("PUT", path, json, **kw)

    async def patch(self, path: str, json: Any = None, **kw: Any) -> tuple[int, dict[str, Any]]:
        return await self.request("PATCH", path, json, **kw)

    async def delete(self, path: str, json: Any = None, **kw: Any) -> tuple[int, dict[str, Any]]:
        return await self.request("DELETE", path, json, **kw)


def assert_error(status: int, body: dict[str, Any], http: int, code: int, *words: str) -> None:
    """The spec's error shape, with the status, code and the words the message must name."""
    assert status == http, (status, body)
    assert body["code"] == code, body
    assert body["StatusCode"] == http, body
    assert body["duration"].endswith("ms"), body
    assert body["more_info"], body
    assert isinstance(body["details"], list), body  # the hosted API's APIError.details
    for w in words:
        assert w in body["message"], (w, body["message"])


class LiveServer:
    """The real API on a loopback port, in a thread with its own event loop (for the sync SDK)."""

    def __init__(self, settings: Settings) -> None:
        self.port = free_port()
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self.runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.runner = web.AppRunner(create_app(self.settings), access_log=None)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", self.port)
        self.loop.run_until_complete(site.start())
        self._ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self.runner.cleanup())
        self.loop.close()

    def start(self) -> LiveServer:
        self._thread.start()
        if not self._ready.wait(20):
            raise RuntimeError("live server did not start")
        return self

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(20)


def wait_for(predicate: Any, timeout: float = 30.0, interval: float = 0.05) -> Any:
    """Poll a sync predicate until it returns a truthy value (for sync SDK tests)."""
    deadline = time.time() + timeout
    while True:
        v = predicate()
        if v:
            return v
        if time.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value {v!r})")
        time.sleep(interval)


async def await_for(predicate: Any, timeout: float = 30.0, interval: float = 0.05) -> Any:
    """Poll an async predicate until it returns a truthy value."""
    deadline = time.time() + timeout
    while True:
        v = await predicate()
        if v:
            return v
        if time.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value {v!r})")
        await asyncio.sleep(interval)


async def seed_everyone(api: Api, pool: Any, n: int) -> None:
    """n users r00001.. named R1.., a sender `boss`, and the all-users segment `everyone`."""
    app = api.creds.app_id
    await pool.execute(
        "INSERT INTO users (app_id, id, name) SELECT $1, 'r' || lpad(i::text, 5, '0'), 'R' || i"
        " FROM generate_series(1, $2) i", app, n)
    await pool.execute("INSERT INTO users (app_id, id, name) VALUES ($1, 'boss', 'Boss')", app)
    st, body = await api.post("/segments", {"id": "everyone", "type": "user", "all_users": True})
    assert st in (200, 201), body

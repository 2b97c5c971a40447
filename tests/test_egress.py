"""The egress guard: webhook URLs aimed at our own network are refused at PATCH /app and again
by a real worker at connect time (names resolving to 127.0.0.1, every literal spelling);
removing or disabling a receiver ends its deliveries; replay only to live receivers."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from broadcaster.app import create_app
from broadcaster.devstack import free_port
from broadcaster.settings import Settings
from broadcaster.webhooks import egress
from tests.helpers import Api, Creds, assert_error, await_for
from tests.test_webhook_delivery import Receiver, add_events, ev

# Every way of writing an address of our own network that a resolver or URL parser accepts.
REFUSED_HOSTS = [
    "127.0.0.1", "127.1", "2130706433", "017700000001", "0177.0.0.1", "0x7f.0.0.1", "0x7f000001",
    "0x7f.1", "[::1]", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "[0:0:0:0:0:ffff:127.0.0.1]",
    "[64:ff9b::7f00:1]", "[2002:7f00:1::]", "0.0.0.0", "0", "[::]", "localhost", "LocalHost.",
    "api.localhost", "169.254.169.254", "10.0.0.1", "172.16.5.4", "192.168.1.1", "100.64.0.1",
    "[fe80::1]", "[fc00::1]", "[fd12:3456::1]", "224.0.0.1", "[ff02::1]", "240.0.0.1",
    "255.255.255.255", "[::ffff:169.254.169.254]", "[::ffff:10.0.0.1]",
]
PUBLIC_HOSTS = ["93.184.216.34", "8.8.8.8", "[2606:4700:4700::1111]", "[::ffff:8.8.8.8]"]


@pytest.mark.parametrize("host", REFUSED_HOSTS)
def test_every_spelling_of_a_private_address_is_refused(host: str) -> None:
    with pytest.raises(egress.EgressRefused):
        egress.check_host(host)


@pytest.mark.parametrize("host", PUBLIC_HOSTS)
def test_public_addresses_pass(host: str) -> None:
    egress.check_host(host)


@pytest.fixture
def loopback_name() -> Iterator[str]:
    """A DNS name that resolves to 127.0.0.1 through /etc/hosts (added for the test, removed
    after), so the guard must look at what a name resolves to, not at how it is spelled."""
    name = f"bc-egress-{uuid.uuid4().hex[:10]}.example"
    line = f"127.0.0.1 {name}\n"
    hosts = Path("/etc/hosts")
    try:
        with hosts.open("a") as f:
            f.write(line)
    except OSError:
        pytest.skip("/etc/hosts is not writable here")
    try:
        assert socket.gethostbyname(name) == "127.0.0.1"
        yield name
    finally:
        kept = [x for x in hosts.read_text().splitlines(keepends=True) if x != line]
        hosts.write_text("".join(kept))


async def test_patch_app_refuses_a_name_resolving_to_loopback(guarded: Api, loopback_name: str) -> None:
    st, body = await guarded.patch("/app", {"webhook_url": f"https://{loopback_name}/hook"})
    assert_error(st, body, 400, 4, "webhook_url", "loopback", "127.0.0.1")


@pytest.fixture
async def guarded(aiohttp_client: Callable[..., Any], settings: Settings, creds: Creds) -> Api:
    """The API as deployed: private addresses not allowed."""
    client: TestClient = await aiohttp_client(create_app(settings.with_(webhook_allow_private=False)))
    return Api(client, creds)


@pytest.mark.parametrize("host", REFUSED_HOSTS)
async def test_patch_app_refuses_private_urls(guarded: Api, host: str) -> None:
    url = f"http://{host}:8080/hook"
    st, body = await guarded.patch("/app", {"webhook_url": url})
    assert_error(st, body, 400, 4, "webhook_url", "refused")
    st, body = await guarded.patch("/app", {"event_hooks": [
        {"id": "ok", "webhook_url": "https://93.184.216.34/hook"},
        {"id": "bad", "webhook_url": url.replace("http:", "https:")},
    ]})
    assert_error(st, body, 400, 4, "event_hooks[1].webhook_url")
    # nothing half-written: the public hook of the refused patch is not stored either
    st, body = await guarded.get("/app")
    assert st == 200 and body["app"]["webhook_url"] == "" and body["app"]["event_hooks"] == []


async def test_patch_app_takes_public_urls(guarded: Api) -> None:
    st, body = await guarded.patch("/app", {"webhook_url": "http://93.184.216.34/hook",
                                            "event_hooks": [{"id": "v6", "webhook_url": "https://[2606:4700:4700::1111]/"}]})
    assert st == 200, body
    st, body = await guarded.get("/app")
    assert body["app"]["webhook_url"] == "http://93.184.216.34/hook"


class Listener:
    """A TCP port on 127.0.0.1 that counts connections and answers 200 to anything."""

    def __init__(self) -> None:
        self.port = free_port()
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await reader.read(65536)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 14\r\nConnection: close\r\n\r\nsecret-answer!")
            await writer.drain()
        finally:
            writer.close()

    async def start(self) -> Listener:
        self.server = await asyncio.start_server(self._conn, "127.0.0.1", self.port)
        return self

    async def stop(self) -> None:
        if self.server:
            self.server.close()
            await self.server.wait_closed()


@pytest.fixture
async def listener() -> AsyncIterator[Listener]:
    s = await Listener().start()
    yield s
    await s.stop()


async def test_worker_refuses_at_connect_time(api: Api, pool, listener: Listener, start_worker,
                                              loopback_name: str) -> None:
    """Hooks stored while private addresses were allowed (as a name whose DNS changed since
    would be): a worker without the allowance connects to none of them, over plain http (the
    lean client) or https (aiohttp)."""
    p = listener.port
    hosts = [loopback_name, "localhost", "127.0.0.1", "2130706433", "127.1", "0x7f.1", "0177.0.0.1", "[::ffff:127.0.0.1]"]
    hooks = [{"id": f"h{i}-{s}", "webhook_url": f"{s}://{h}:{p}/hook"}
             for i, h in enumerate(hosts) for s in ("http", "https")]
    st, body = await api.patch("/app", {"event_hooks": hooks})  # the suite's API allows them
    assert st == 200, body
    await add_events(pool, api.creds.app_id, [ev("message.new", None, 1)])
    start_worker(webhook_allow_private=False)

    async def all_failed() -> Any:
        rows = await pool.fetch("SELECT receiver, state, last_error, attempt FROM webhook_deliveries")
        return rows if len(rows) == len(hooks) and all(r["state"] == "failed" for r in rows) else None

    rows = await await_for(all_failed, timeout=30)
    assert listener.connections == 0
    for r in rows:
        assert r["last_error"].startswith("egress_refused"), dict(r)
        assert r["attempt"] == 1  # refused for good, not retried for 24 h
    st, body = await api.get("/webhooks/failed")
    assert st == 200 and len(body["webhooks"]) == len(hooks)


async def test_failed_list_shows_no_response_body(api: Api, pool, start_worker) -> None:
    recv = Receiver()
    from aiohttp import web

    recv.answer = lambda req: web.Response(status=404, text="internal: redis password is hunter2")
    await recv.start()
    try:
        await api.patch("/app", {"webhook_url": recv.url})
        await add_events(pool, api.creds.app_id, [ev("message.new", None, 1)])
        start_worker()

        async def failed() -> Any:
            st, body = await api.get("/webhooks/failed")
            return body if body["webhooks"] else None

        body = await await_for(failed, timeout=30)
        item = body["webhooks"][0]
        assert item["last_status"] == 404 and item["last_error"] == "http_404"
        assert b"hunter2" not in orjson.dumps(body)
    finally:
        await recv.stop()


async def test_removed_and_disabled_receivers_end_their_deliveries(api: Api, pool, start_worker) -> None:
    a, b = Receiver(), Receiver()  # not started: refused, retrying
    st, body = await api.patch("/app", {"event_hooks": [{"id": "a", "webhook_url": a.url},
                                                        {"id": "b", "webhook_url": b.url}]})
    assert st == 200, body
    await add_events(pool, api.creds.app_id, [ev("message.new", None, i) for i in range(3)])
    start_worker()

    async def retrying() -> bool:
        return await pool.fetchval("SELECT count(DISTINCT receiver) FROM webhook_deliveries"
                                   " WHERE attempt >= 1 AND last_error = 'refused'") == 2

    await await_for(retrying, timeout=30)
    st, body = await api.patch("/app", {"event_hooks": [{"id": "b", "webhook_url": b.url, "enabled": False}]})
    assert st == 200, body
    rows = await pool.fetch("SELECT receiver, state, last_error FROM webhook_deliveries ORDER BY id")
    assert {(r["receiver"], r["state"], r["last_error"]) for r in rows} == {
        ("hook:a", "failed", "receiver removed"), ("hook:b", "failed", "receiver disabled")}
    # replay sends to receivers that exist and are enabled only
    st, body = await api.post("/webhooks/replay", {"since": "2020-01-01T00:00:00Z"})
    assert st == 200 and body["replayed"] == 0, body
    await b.start()
    await a.start()
    try:
        st, body = await api.patch("/app", {"event_hooks": [{"id": "b", "webhook_url": b.url}]})
        assert st == 200, body
        st, body = await api.post("/webhooks/replay", {"since": "2020-01-01T00:00:00Z"})
        assert st == 200 and body["replayed"] == 3, body
        await await_for(lambda: _got(b, 3), timeout=30)
        assert sorted(g["event"]["n"] for g in b.got) == [0, 1, 2]
        assert a.got == []
        assert await pool.fetchval("SELECT count(*) FROM webhook_deliveries WHERE receiver = 'hook:a'") == 3
    finally:
        await a.stop()
        await b.stop()


async def _got(r: Receiver, n: int) -> bool:
    return len(r.got) >= n

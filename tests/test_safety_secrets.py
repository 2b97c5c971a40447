"""Secrets: rotation with a grace period (API and CLI), token age limit, encryption at rest,
the per-installation cursor key, and the /metrics bearer token."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import orjson
import pytest

from broadcaster import keyring, secretbox
from broadcaster.app import create_app
from broadcaster.settings import DEFAULT_CURSOR_SECRET, Settings
from broadcaster.store import webhooks as whstore
from tests.helpers import Api, Creds, assert_error, await_for

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _restore_secret_key() -> Iterator[None]:
    before = secretbox._Key.value
    yield
    secretbox._Key.value = before


def _tok(secret: str, **claims: Any) -> str:
    return jwt.encode({"server": True, **claims}, secret, algorithm="HS256")


async def _get(api: Api, token: str) -> tuple[int, dict[str, Any]]:
    return await api.get("/app", headers={"Authorization": token})


async def test_rotation_keeps_the_old_secret_during_grace_only(api: Api, creds: Creds, pool: Any) -> None:
    old = creds.api_secret
    st, body = await api.post("/app/secret/rotate", {"grace_seconds": 2})
    assert st == 200, body
    new = body["app"]["api_secret"]
    assert new != old and body["app"]["api_key"] == creds.api_key and body["app"]["previous_secret_expires_at"]
    assert (await _get(api, _tok(old)))[0] == 200  # in its grace period
    assert (await _get(api, _tok(new)))[0] == 200
    # webhook signatures use the new secret at once
    apps_ = await whstore.app_settings(pool, [creds.app_id])
    assert apps_[creds.app_id]["api_secret"] == new

    async def refused() -> bool:
        return (await _get(api, _tok(old)))[0] == 401

    await await_for(refused, timeout=15)
    st, body = await _get(api, _tok(old))
    assert_error(st, body, 401, 43, "signature")
    assert (await _get(api, _tok(new)))[0] == 200
    # a rotation with no grace: the secret just replaced stops at once
    st, body = await api.post("/app/secret/rotate", {"grace_seconds": 0}, headers={"Authorization": _tok(new)})
    assert st == 200, body
    newer = body["app"]["api_secret"]
    assert_error(*(await _get(api, _tok(new))), 401, 43)
    assert (await _get(api, _tok(newer)))[0] == 200


@pytest.mark.parametrize("grace", [-1, 31 * 86_400, "1h", True])
async def test_rotation_grace_is_validated(api: Api, grace: Any) -> None:
    st, body = await api.post("/app/secret/rotate", {"grace_seconds": grace})
    assert_error(st, body, 400, 4, "grace_seconds")
    assert (await api.get("/app"))[0] == 200  # nothing rotated: the fixture's secret still works


def test_cli_rotate_secret(settings: Settings, creds: Creds) -> None:
    env = {**os.environ, **settings.to_env()}
    out = subprocess.run([sys.executable, "-m", "broadcaster", "app", "rotate-secret", "--api-key", creds.api_key,
                          "--grace-seconds", "0"], env=env, cwd=ROOT, capture_output=True, check=True, timeout=60)
    body = orjson.loads(out.stdout)
    assert body["api_key"] == creds.api_key and body["api_secret"] != creds.api_secret
    creds.api_secret = body["api_secret"]


async def test_cli_rotated_secret_is_the_one_that_verifies(settings: Settings, creds: Creds, api: Api) -> None:
    old = creds.api_secret
    test_cli_rotate_secret(settings, creds)
    assert (await _get(api, _tok(creds.api_secret)))[0] == 200
    assert_error(*(await _get(api, _tok(old))), 401, 43)


@pytest.fixture
async def aged_api(aiohttp_client: Callable[..., Any], settings: Settings, creds: Creds) -> Api:
    return Api(await aiohttp_client(create_app(settings.with_(max_token_age_s=60))), creds)


async def test_token_age_limit(aged_api: Api, creds: Creds) -> None:
    now = int(time.time())
    assert (await _get(aged_api, _tok(creds.api_secret, iat=now - 5)))[0] == 200
    assert_error(*(await _get(aged_api, _tok(creds.api_secret, iat=now - 120))), 401, 40, "too old")
    assert_error(*(await _get(aged_api, _tok(creds.api_secret))), 401, 5, "iat")


async def test_no_age_limit_by_default(api: Api, creds: Creds) -> None:
    assert (await _get(api, _tok(creds.api_secret, iat=int(time.time()) - 10 * 86_400)))[0] == 200
    assert (await _get(api, _tok(creds.api_secret)))[0] == 200


async def test_secrets_encrypted_at_rest(
    aiohttp_client: Callable[..., Any], settings: Settings, creds: Creds, pool: Any,
) -> None:
    """A plain row from before the key keeps working and is sealed at startup; rows read revealed."""
    assert not (await pool.fetchval("SELECT api_secret FROM apps WHERE id = $1", creds.app_id)).startswith("enc1:")
    keyed = settings.with_(secret_key="k1-" + "x" * 40)
    api = Api(await aiohttp_client(create_app(keyed)), creds)
    assert (await api.get("/app"))[0] == 200
    stored = await pool.fetchval("SELECT api_secret FROM apps WHERE id = $1", creds.app_id)
    assert stored.startswith("enc1:") and creds.api_secret not in stored
    st, body = await api.post("/app/secret/rotate", {"grace_seconds": 60})
    assert st == 200, body
    row = await pool.fetchrow("SELECT api_secret, previous_secret FROM apps WHERE id = $1", creds.app_id)
    assert row["api_secret"].startswith("enc1:") and row["previous_secret"].startswith("enc1:")
    assert body["app"]["api_secret"] not in row["api_secret"]
    assert (await _get(api, _tok(body["app"]["api_secret"])))[0] == 200
    assert (await _get(api, _tok(creds.api_secret)))[0] == 200  # the old one, in its grace
    assert (await whstore.app_settings(pool, [creds.app_id]))[creds.app_id]["api_secret"] == body["app"]["api_secret"]
    with pytest.raises(secretbox.SecretKeyMissing):
        secretbox.reveal(row["api_secret"], "another-key")
    with pytest.raises(secretbox.SecretKeyMissing):
        secretbox.reveal(row["api_secret"], "")


def test_secretbox_round_trip() -> None:
    sealed = secretbox.seal("s3cret", "key")
    assert sealed.startswith("enc1:") and "s3cret" not in sealed and sealed != secretbox.seal("s3cret", "key")
    assert secretbox.reveal(sealed, "key") == "s3cret"
    assert secretbox.seal("plain", "") == "plain" and secretbox.reveal("plain", "key") == "plain"


async def test_cursor_key_is_generated_per_installation(
    aiohttp_client: Callable[..., Any], settings: Settings, pool: Any,
) -> None:
    """Without a configured key, API processes use the installation's own (the same in every
    process, kept in PostgreSQL), never the built-in constant."""
    one = settings.with_(cursor_secret=DEFAULT_CURSOR_SECRET)
    two = settings.with_(cursor_secret=DEFAULT_CURSOR_SECRET)
    await aiohttp_client(create_app(one))
    await aiohttp_client(create_app(two))
    assert one.cursor_secret != DEFAULT_CURSOR_SECRET and len(one.cursor_secret) >= 40
    assert two.cursor_secret == one.cursor_secret
    assert await pool.fetchval("SELECT count(*) FROM installation_secrets WHERE name = 'cursor_secret'") == 1
    insecure = settings.with_(cursor_secret=DEFAULT_CURSOR_SECRET, allow_insecure_defaults=True)
    await keyring.load(insecure, pool)
    assert insecure.cursor_secret == DEFAULT_CURSOR_SECRET
    configured = settings.with_()
    await keyring.load(configured, pool)
    assert configured.cursor_secret == settings.cursor_secret


@pytest.fixture
async def metrics_client(aiohttp_client: Callable[..., Any], settings: Settings) -> Any:
    return await aiohttp_client(create_app(settings.with_(metrics_token="m-token-1")))


@pytest.mark.parametrize(("header", "status"), [
    (None, 401), ("Bearer wrong", 401), ("m-token-1", 401), ("Bearer m-token-1", 200),
])
async def test_metrics_bearer_token(metrics_client: Any, header: str | None, status: int) -> None:
    resp = await metrics_client.get("/metrics", headers={"Authorization": header} if header else {})
    assert resp.status == status
    if status == 401:
        assert_error(resp.status, await resp.json(), 401, 5, "BROADCASTER_METRICS_TOKEN")
    else:
        assert "broadcaster_http_requests_total" in await resp.text()


async def test_metrics_open_without_token(client: Any) -> None:
    assert (await client.get("/metrics")).status == 200


async def test_worker_metrics_bearer_token(start_worker: Any) -> None:
    import aiohttp

    from broadcaster.devstack import free_port

    port = free_port()
    start_worker(worker_metrics_port=port, metrics_token="w-token-2")
    async with aiohttp.ClientSession() as http:
        async def status(headers: dict[str, str]) -> int:
            try:
                async with http.get(f"http://127.0.0.1:{port}/metrics", headers=headers) as r:
                    return r.status
            except aiohttp.ClientError:
                return 0

        async def up() -> bool:
            return await status({}) != 0

        await await_for(up, timeout=60)
        assert await status({}) == 401
        assert await status({"Authorization": "Bearer nope"}) == 401
        async with http.get(f"http://127.0.0.1:{port}/metrics", headers={"Authorization": "Bearer w-token-2"}) as r:
            assert r.status == 200 and "broadcaster_jobs_total" in await r.text()

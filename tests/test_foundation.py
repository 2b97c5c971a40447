"""Auth, errors, app settings, migrations, health."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import jwt
import orjson

from broadcaster.migrate import migrate
from tests.helpers import Api, Creds, assert_error


async def test_healthz_needs_no_auth(client):
    r = await client.get("/healthz")
    assert r.status == 200
    body = await r.json()
    assert body["status"] == "ok" and body["duration"].endswith("ms")


async def test_readyz_checks_both(client):
    r = await client.get("/readyz")
    body = await r.json()
    assert r.status == 200, body
    assert body["checks"] == {"postgres": "ok", "redis": "ok"}


async def test_auth_codes(client, creds: Creds):
    async def call(params, headers):
        r = await client.get("/app", params=params, headers=headers)
        return r.status, await r.json()

    good = {"api_key": creds.api_key}
    now = int(time.time())
    assert_error(*await call({}, {"Authorization": creds.token()}), 401, 2, "api_key")
    assert_error(*await call({"api_key": "nope"}, {"Authorization": creds.token()}), 401, 2, "api_key")
    assert_error(*await call(good, {}), 401, 5, "Authorization")
    assert_error(*await call(good, {"Authorization": "garbage"}), 401, 5)
    assert_error(*await call(good, {"Authorization": creds.token(exp=now - 10)}), 401, 40, "expired")
    assert_error(*await call(good, {"Authorization": creds.token(nbf=now + 600)}), 401, 41, "nbf")
    assert_error(*await call(good, {"Authorization": creds.token(iat=now + 600)}), 401, 42, "iat")
    forged = jwt.encode({"server": True}, "wrong-secret", algorithm="HS256")
    assert_error(*await call(good, {"Authorization": forged}), 401, 43, "signature")
    user_tok = jwt.encode({"user_id": "u1"}, creds.api_secret, algorithm="HS256")
    assert_error(*await call(good, {"Authorization": user_tok}), 403, 17, "user token")
    not_server = jwt.encode({"server": False}, creds.api_secret, algorithm="HS256")
    assert_error(*await call(good, {"Authorization": not_server}), 403, 17, "user token")
    # the newer SDKs' server token: signed with the secret, no user, no `server` claim
    st, body = await call(good, {"Authorization": jwt.encode({"iat": now}, creds.api_secret, algorithm="HS256")})
    assert st == 200, body
    # raw and Bearer forms both work
    st, body = await call(good, {"Authorization": creds.token()})
    assert st == 200, body
    st, body = await call(good, {"Authorization": "Bearer " + creds.token(iat=now, exp=now + 60)})
    assert st == 200, body


async def test_malformed_and_oversized_bodies(api: Api, settings):
    st, body = await api.request("PATCH", "/app", data=b"{not json")
    assert_error(st, body, 400, 4, "JSON")
    st, body = await api.request("PATCH", "/app", data=b"[1,2]")
    assert_error(st, body, 400, 4, "object")
    big = b'{"x": "' + b"a" * (settings.max_body_bytes + 10) + b'"}'
    st, body = await api.request("PATCH", "/app", data=big)
    assert_error(st, body, 413, 22)


async def test_unknown_route_is_404_in_shape(api: Api):
    st, body = await api.get("/no/such/thing")
    assert_error(st, body, 404, 16)


async def test_app_settings_round_trip_and_validation(api: Api, other_api: Api):
    st, body = await api.patch("/app", {
        "webhook_url": "https://example.test/hook", "webhook_events": ["message.new"],
        "webhook_rate_limit": 50, "rate_limits": {"default": 100, "QueryUsers": 5},
        "campaign_send_rate": 10, "unknown_field": 1,
    })
    assert st == 200, body
    st, body = await api.get("/app")
    assert st == 200
    app = body["app"]
    assert app["webhook_url"] == "https://example.test/hook"
    assert app["webhook_events"] == ["message.new"]
    assert app["rate_limits"] == {"default": 100, "QueryUsers": 5}
    assert app["campaign_send_rate"] == 10
    # the other app sees its own defaults
    st, body = await other_api.get("/app")
    assert body["app"]["webhook_url"] == ""
    assert_error(*await api.patch("/app", {"webhook_url": "ftp://x"}), 400, 4, "webhook_url")
    assert_error(*await api.patch("/app", {"webhook_url": "https://u:p@x.test/"}), 400, 4, "credentials")
    assert_error(*await api.patch("/app", {"webhook_events": ["nope"]}), 400, 4, "webhook_events[0]")
    assert_error(*await api.patch("/app", {"rate_limits": {"QueryUsers": -1}}), 400, 4, "rate_limits.QueryUsers")


async def test_internal_error_has_request_id_and_no_traceback(client, api: Api, settings):
    # Break the database under the API: drop the apps table's row source mid-flight.
    conn = await asyncpg.connect(settings.database_url)
    await conn.execute("ALTER TABLE apps RENAME TO apps_gone")
    try:
        st, body = await api.get("/app")
    finally:
        await conn.execute("ALTER TABLE apps_gone RENAME TO apps")
        await conn.close()
    assert_error(st, body, 500, -1, "request id")
    assert "Traceback" not in orjson.dumps(body).decode()


async def test_migrations_idempotent_and_concurrent(pg_admin_url):
    conn = await asyncpg.connect(pg_admin_url)
    await conn.execute("DROP DATABASE IF EXISTS mig_test WITH (FORCE)")
    await conn.execute("CREATE DATABASE mig_test")
    await conn.close()
    url = pg_admin_url.replace("/postgres?", "/mig_test?", 1) if "/postgres?" in pg_admin_url \
        else pg_admin_url.rsplit("/", 1)[0] + "/mig_test"
    results = await asyncio.gather(*(migrate(url) for _ in range(4)))
    applied = [r for r in results if r]
    assert len(applied) == 1, results  # exactly one process applied them, the rest waited
    assert await migrate(url) == []
    conn = await asyncpg.connect(url)
    n = await conn.fetchval("SELECT count(*) FROM schema_migrations")
    await conn.close()
    assert n == len(applied[0])
    conn = await asyncpg.connect(pg_admin_url)
    await conn.execute("DROP DATABASE mig_test WITH (FORCE)")
    await conn.close()


async def test_worker_process_consumes_jobs(settings, start_worker):
    from arq import create_pool

    from broadcaster.app import redis_settings
    from tests.helpers import await_for

    redis = await create_pool(redis_settings(settings), default_queue_name=settings.queue_name)
    try:
        job = await redis.enqueue_job("ping", _job_id="ping-from-test")
        assert job is not None
        assert await redis.zscore(settings.queue_name, "ping-from-test") is not None
        start_worker()

        async def drained() -> bool:
            # arq removes a finished job from the queue and deletes its key
            gone = await redis.zscore(settings.queue_name, "ping-from-test") is None
            return gone and not await redis.exists("arq:job:ping-from-test")

        await await_for(drained, timeout=30)
    finally:
        await redis.aclose()


def test_cli_migrate_and_app_create(settings):
    import os
    import subprocess
    import sys

    env = {**os.environ, **settings.to_env()}
    out = subprocess.run([sys.executable, "-m", "broadcaster", "migrate"], env=env,
                         capture_output=True, check=True, timeout=60)
    assert orjson.loads(out.stdout) == {"applied": []}  # the template is already migrated
    out = subprocess.run([sys.executable, "-m", "broadcaster", "app", "create", "--name", "cli"],
                         env=env, capture_output=True, check=True, timeout=60)
    creds = orjson.loads(out.stdout)
    assert set(creds) == {"api_key", "api_secret"} and len(creds["api_secret"]) >= 32

    async def check() -> str:
        conn = await asyncpg.connect(settings.database_url)
        try:
            return await conn.fetchval("SELECT name FROM apps WHERE api_key = $1", creds["api_key"])
        finally:
            await conn.close()

    assert asyncio.run(check()) == "cli"


async def test_nul_characters_are_a_400_naming_the_field(api: Api):
    st, body = await api.post("/users", {"users": {"a": {"id": "a", "bio": "x\u0000y"}}})
    assert_error(st, body, 400, 4, "users.a.bio", "NUL")
    st, body = await api.patch("/users", {"users": [{"id": "0", "set": {}, "unset": ["\u0000"]}]})
    assert_error(st, body, 400, 4, "users[0].unset[0]", "NUL")
    st, body = await api.get("/users", params={"payload": '{"filter_conditions": {"id": "\\u0000"}}'})
    assert_error(st, body, 400, 4, "payload.filter_conditions.id", "NUL")
    st, body = await api.get("/users", params={"payload": "{}"})
    assert st == 200 and body["users"] == [], body  # nothing was written by the refused calls

"""The `broadcaster` command: serve, worker, migrate, app create, dev, and the tools."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import orjson

from broadcaster import logs
from broadcaster.settings import Settings

# Subcommands living in their own modules: each has add_arguments(parser) and run(args) -> int.
TOOL_MODULES = {
    "import-targets": ("broadcaster.importer", "bulk-import segment targets from a file"),
    "bench": ("broadcaster.bench", "run the benchmark and print one JSON object"),
}


def cmd_serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from broadcaster.app import create_app

    settings = Settings.from_env()
    logs.setup(settings.log_level)
    web.run_app(create_app(settings), host=settings.host, port=settings.port, loop=_event_loop(),
                access_log=None, print=None, shutdown_timeout=10,
                # GET /users carries its query as ?payload=<json>: allow long request lines.
                max_line_size=65536, max_field_size=65536)
    return 0


def _event_loop() -> asyncio.AbstractEventLoop | None:
    """uvloop's loop where it is installed (the `fast` extra) unless BROADCASTER_UVLOOP=0:
    the API's per-request CPU is mostly the event loop's and aiohttp's, not ours."""
    if os.environ.get("BROADCASTER_UVLOOP", "1").strip().lower() in ("0", "false", "no"):
        return None
    try:
        import uvloop
    except ImportError:
        return None
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    return loop


def cmd_worker(args: argparse.Namespace) -> int:
    from broadcaster import worker

    settings = Settings.from_env()
    if args.metrics_port is not None:
        settings = settings.with_(worker_metrics_port=args.metrics_port)
    worker.run(settings)
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from broadcaster.migrate import migrate

    settings = Settings.from_env()
    logs.setup(settings.log_level)
    applied = asyncio.run(migrate(settings.database_url))
    print(orjson.dumps({"applied": applied}).decode())
    return 0


async def _app_rotate(dsn: str, api_key: str, grace: float) -> dict[str, str | None]:
    from broadcaster import db, timefmt
    from broadcaster.store import apps

    conn = await db.connect(dsn)
    try:
        row = await apps.by_key(conn, api_key)
        if row is None:
            raise SystemExit(f"no app with api_key {api_key!r}")
        new = await apps.rotate_secret(conn, row.id, grace)
        return {"api_key": new.api_key, "api_secret": new.api_secret,
                "previous_secret_expires_at": timefmt.fmt(new.previous_secret_expires_at)}
    finally:
        await conn.close()


async def _app_create(dsn: str, name: str, reuse: bool) -> dict[str, str]:
    from broadcaster import db
    from broadcaster.store import apps

    conn = await db.connect(dsn)
    try:
        row = await apps.by_name(conn, name) if reuse else None
        if row is None:
            row = await apps.create(conn, name)
        return {"api_key": row.api_key, "api_secret": row.api_secret}
    finally:
        await conn.close()


def cmd_app(args: argparse.Namespace) -> int:
    from broadcaster import secretbox

    settings = Settings.from_env()
    secretbox.configure(settings.secret_key)
    out = asyncio.run(_app_create(settings.database_url, args.name, reuse=False))
    print(orjson.dumps(out).decode())
    return 0


def cmd_rotate(args: argparse.Namespace) -> int:
    from broadcaster import secretbox

    settings = Settings.from_env()
    secretbox.configure(settings.secret_key)
    print(orjson.dumps(asyncio.run(_app_rotate(settings.database_url, args.api_key, args.grace_seconds))).decode())
    return 0


def _dev_secret_key(base: Path) -> str:
    """dev keeps app secrets encrypted too, with a key it generates once under the data dir."""
    from broadcaster import secretbox

    path = base / "secret_key"
    if not path.exists():
        base.mkdir(parents=True, exist_ok=True)
        path.write_text(secretbox.generate_key())
        path.chmod(0o600)
    return path.read_text().strip()


def cmd_dev(args: argparse.Namespace) -> int:
    """Everything in one command: embedded servers (unless configured), migrate, a `dev` app,
    the API in the foreground and one worker as a child process, until Ctrl-C."""
    from broadcaster import devstack
    from broadcaster.migrate import migrate

    base = Path(args.data_dir).resolve()
    env_db = os.environ.get("BROADCASTER_DATABASE_URL")
    env_redis = os.environ.get("BROADCASTER_REDIS_URL")
    pg = redis = None
    try:
        if env_db:
            dsn = env_db
        else:
            print(f"starting embedded PostgreSQL in {base / 'pgdata'} ...", file=sys.stderr)
            pg = devstack.start_postgres(base / "pgdata")
            asyncio.run(devstack.ensure_database(pg.admin_url, "broadcaster"))
            dsn = pg.url_for("broadcaster")
        if env_redis:
            redis_url = env_redis
        else:
            redis = devstack.start_redis(base / "redis", port=args.redis_port or None)
            redis_url = redis.url
        # local receivers are the point of a dev stack: the egress guard would refuse them
        settings = Settings.from_env().with_(database_url=dsn, redis_url=redis_url,
                                             webhook_allow_private=True)
        if not settings.secret_key:
            settings = settings.with_(secret_key=_dev_secret_key(base))
        from broadcaster import secretbox

        secretbox.configure(settings.secret_key)
        asyncio.run(migrate(dsn))
        creds = asyncio.run(_app_create(dsn, "dev", reuse=True))
        base_url = f"http://{settings.host}:{settings.port}"
        print(orjson.dumps({"base_url": base_url, **creds}).decode(), flush=True)
        print(f"broadcaster dev: API on {base_url}, one worker; Ctrl-C stops everything",
              file=sys.stderr, flush=True)
        env = {**os.environ, **settings.to_env()}
        worker = subprocess.Popen([sys.executable, "-m", "broadcaster", "worker"], env=env)
        try:
            os.environ.update(settings.to_env())
            cmd_serve(args)
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(15)
            except subprocess.TimeoutExpired:
                worker.kill()
    finally:
        if redis:
            redis.stop()
        if pg:
            pg.stop()
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="broadcaster", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the HTTP API").set_defaults(func=cmd_serve)
    w = sub.add_parser("worker", help="run an arq worker")
    w.add_argument("--metrics-port", type=int, default=None, help="serve /metrics on this port")
    w.set_defaults(func=cmd_worker)
    sub.add_parser("migrate", help="apply pending migrations").set_defaults(func=cmd_migrate)
    a = sub.add_parser("app", help="manage apps")
    asub = a.add_subparsers(dest="app_command", required=True)
    c = asub.add_parser("create", help="create an app and print its key and secret as JSON")
    c.add_argument("--name", required=True)
    c.set_defaults(func=cmd_app)
    r = asub.add_parser("rotate-secret", help="give an app a new secret; the old one verifies during the grace period")
    r.add_argument("--api-key", required=True)
    r.add_argument("--grace-seconds", type=float, default=86_400.0, help="how long the old secret still verifies")
    r.set_defaults(func=cmd_rotate)
    d = sub.add_parser("dev", help="everything in one command on embedded PostgreSQL and Redis")
    d.add_argument("--data-dir", default=".broadcaster", help="where embedded servers keep data")
    d.add_argument("--redis-port", type=int, default=0)
    d.set_defaults(func=cmd_dev)
    for name, (module, help_text) in TOOL_MODULES.items():
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name != module:
                raise
            continue
        tp = sub.add_parser(name, help=help_text)
        mod.add_arguments(tp)
        tp.set_defaults(func=mod.run)
    return p


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    sys.exit(args.func(args) or 0)

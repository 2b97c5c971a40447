"""HTTP handlers, one module per resource; each exposes `routes` (named by operation)."""

from __future__ import annotations

import importlib

from aiohttp import web

ROUTE_MODULES = (
    "system", "app_settings", "users", "channels", "members", "segments", "campaigns", "webhooks",
    "ratelimits", "docs", "metrics", "funnel", "series",
)


def setup_routes(app: web.Application) -> None:
    for name in ROUTE_MODULES:
        full = f"broadcaster.api.{name}"
        try:
            module = importlib.import_module(full)
        except ModuleNotFoundError as e:
            if e.name != full:
                raise
            continue
        app.router.add_routes(module.routes)
    from broadcaster.api import v2

    v2.add_aliases(app)

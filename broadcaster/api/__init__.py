"""HTTP handlers, one module per resource; each exposes `routes` (named by operation)."""

from __future__ import annotations

from aiohttp import web


def setup_routes(app: web.Application) -> None:
    from broadcaster.api import app_settings, channels, system, users

    for module in (system, app_settings, users, channels):
        app.router.add_routes(module.routes)

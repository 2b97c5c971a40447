"""HTTP handlers, one module per resource; each exposes `routes` (named by operation)."""

from __future__ import annotations

from aiohttp import web

from broadcaster.api import (
    app_settings,
    campaigns,
    channels,
    docs,
    events,
    funnel,
    members,
    metrics,
    ratelimits,
    segments,
    series,
    system,
    unsubscribe,
    users,
    v2,
    webhooks,
)

ROUTE_MODULES = (system, app_settings, users, channels, members, segments, campaigns, webhooks,
                 ratelimits, docs, metrics, funnel, series, events, unsubscribe)


def setup_routes(app: web.Application) -> None:
    for module in ROUTE_MODULES:
        app.router.add_routes(module.routes)
    v2.add_aliases(app)

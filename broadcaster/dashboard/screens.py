"""The segment, automation, webhook and settings screens' routes, registered in routes.py."""

from __future__ import annotations

from broadcaster.dashboard import automation, segments, settings, webhooks

ROUTES = [*segments.ROUTES, *automation.ROUTES, *webhooks.ROUTES, *settings.ROUTES]

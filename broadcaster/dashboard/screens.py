"""The segment, automation, webhook and settings screens' routes, registered in routes.py."""

from __future__ import annotations

from broadcaster.dashboard import segments

ROUTES = [*segments.ROUTES]

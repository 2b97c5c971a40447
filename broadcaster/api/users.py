"""users endpoints (filled in by the chat-data work)."""

from __future__ import annotations

from aiohttp import web

routes = web.RouteTableDef()

"""API rate limits per app and operation (the webhooks/rate-limits work fills this in)."""

from __future__ import annotations

from aiohttp import web

from broadcaster.middleware import Handler


@web.middleware
async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    return await handler(request)

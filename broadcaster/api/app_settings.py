"""GET/PATCH /app: webhook, rate-limit and send-rate settings."""

from __future__ import annotations

from aiohttp import web

from broadcaster import appconfig
from broadcaster.http import ok, read_json
from broadcaster.keys import POOL
from broadcaster.middleware import current_app
from broadcaster.store import apps

routes = web.RouteTableDef()


@routes.get("/app", name="GetApp")
async def get_app(request: web.Request) -> web.Response:
    row = current_app(request)
    fresh = await apps.by_id(request.app[POOL], row.id)
    assert fresh is not None
    return ok(request, {"app": appconfig.public_view(fresh.name, fresh.settings)})


@routes.patch("/app", name="UpdateApp")
async def update_app(request: web.Request) -> web.Response:
    row = current_app(request)
    patch = appconfig.validate_patch(await read_json(request))
    if patch:
        await apps.update_settings(request.app[POOL], row.id, patch)
    return ok(request)

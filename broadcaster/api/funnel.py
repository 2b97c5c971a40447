"""The campaign funnel (SPEC 5C): conversions in, clicks through /c/{token}, funnel views."""

from __future__ import annotations

from aiohttp import web

from broadcaster import analytics, timefmt
from broadcaster.http import ok, read_json
from broadcaster.keys import POOL
from broadcaster.middleware import current_app
from broadcaster.store import conversions

routes = web.RouteTableDef()


@routes.post("/conversions", name="TrackConversions")
async def track_conversions(request: web.Request) -> web.Response:
    app = current_app(request)
    items = analytics.conversions(await read_json(request, required=True), timefmt.now())
    window = analytics.app_window(app.settings)  # read with the app row by this request's auth
    async with request.app[POOL].acquire() as conn:
        out = await conversions.record(conn, app.id, items, window)
    counts = {s: sum(1 for o in out if o["status"] == s) for s in ("attributed", "unattributed", "duplicate")}
    return ok(request, {"conversions": out, "attributed": counts["attributed"],
                        "unattributed": counts["unattributed"], "duplicates": counts["duplicate"]})

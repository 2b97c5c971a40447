"""The campaign funnel (SPEC 5C): conversions in, clicks through /c/{token}, funnel views."""

from __future__ import annotations

import dataclasses

from aiohttp import web

from broadcaster import analytics, cursors, timefmt
from broadcaster.domain import links
from broadcaster.errors import not_found
from broadcaster.http import ok, read_json
from broadcaster.keys import CLICK_PIPE, POOL, SETTINGS
from broadcaster.middleware import current_app
from broadcaster.store import campaigns, conversions, interactions, occurrence_views

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


@routes.get("/c/{token}", name="FollowLink")
async def follow_link(request: web.Request) -> web.Response:
    """No auth: the token is the credential. 302 to the exact link it was signed for once
    the click is in the outbox (durable; counted by the drainer, services/clickpipe);
    anything we did not sign, or whose recipient the campaign does not have, is a 404 and
    redirects nowhere."""
    secret, tok = request.app[SETTINGS].click_secret, request.match_info["token"]
    pipe = request.app[CLICK_PIPE]
    got = links.open_token(secret, tok)
    click = await pipe.resolve(got) if isinstance(got, links.Ref) else got
    if click is None:
        raise not_found("link")
    # HEAD is what link-preview bots send: it redirects but is not a click
    if not click.test and request.method == "GET" and not await pipe.record(click):
        raise not_found("link")
    return web.Response(status=302, headers={
        "Location": click.url, "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})


@routes.get("/campaigns/{id}/interactions", name="QueryCampaignInteractions")
async def query_interactions(request: web.Request) -> web.Response:
    """{user_id, type, at, message_id, variant?, data?} of one type, paged by next/prev
    cursors that carry the type (a request with a cursor continues its type)."""
    app = current_app(request)
    pool = request.app[POOL]
    camp = await campaigns.get(pool, app.id, request.match_info["id"])
    q = request.query
    secret = request.app[SETTINGS].cursor_secret
    limit = cursors.limit_of(q.get("limit"), "limit", default=100, hi=1000)
    scope = ["interactions", app.id, camp["id"]]
    req = cursors.begin(q, scope, {"type": q.get("type")}, secret, limit=limit)
    kind = analytics.interaction_type(req.query.get("type"))
    fam = await occurrence_views.family(pool, app.id, camp)  # a repeating campaign's occurrences too
    if fam is not None and kind in ("sent", "read"):
        req = dataclasses.replace(req, position=occurrence_views.widen(req.position, fam, req.backwards))
    pos = cursors.typed_position(req, interactions.kinds(kind, fam))
    rows = await interactions.page(pool, app.id, camp["id"], kind, pos, req.backwards, limit + 1, fam)
    page, more = cursors.finish(req, rows, lambda r: r["pos"], secret)
    for r in page:
        del r["pos"]
    return ok(request, {"interactions": page, **more})

"""GET /u/{token} (SPEC 5B): the signed opt-out link of {{ unsubscribe_url }}. No auth: the
token is the credential; it sets the user's campaigns_opt_out and answers a small page."""

from __future__ import annotations

import html

from aiohttp import web

from broadcaster.domain import unsubscribe
from broadcaster.keys import POOL, SETTINGS
from broadcaster.store import users

routes = web.RouteTableDef()

_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;color:#222}}</style>
</head><body><h1>{title}</h1><p>{text}</p></body></html>"""


def page(status: int, title: str, text: str) -> web.Response:
    return web.Response(status=status, content_type="text/html", charset="utf-8",
                        text=_PAGE.format(title=html.escape(title), text=html.escape(text)),
                        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})


@routes.get("/u/{token}", name="Unsubscribe")
async def unsubscribe_link(request: web.Request) -> web.Response:
    opened = unsubscribe.open_token(request.app[SETTINGS].click_secret, request.match_info["token"])
    if opened is None:
        return page(404, "Link not valid", "This unsubscribe link is not valid. Nothing was changed.")
    app_id, user_id = opened
    if not await users.opt_out(request.app[POOL], app_id, user_id):
        return page(404, "Link not valid", "This unsubscribe link is not valid. Nothing was changed.")
    return page(200, "You are unsubscribed", "You will not receive campaign messages any more.")

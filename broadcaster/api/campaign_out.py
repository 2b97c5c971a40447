"""The campaign object as the API answers it: with its segments, its sender and a page of its
users, the users pager of GetCampaign (`?limit=&next=&prev=` or `?payload={"users": ...}`)."""

from __future__ import annotations

import bisect
from typing import Any

from aiohttp import web

from broadcaster import cursors
from broadcaster.errors import bad_request
from broadcaster.http import ok, query_payload
from broadcaster.keys import POOL, SETTINGS
from broadcaster.store import campaign_view, campaigns, ledger

USERS_PAGE = 100  # campaign.users per page when no limit is given


def users_page_request(request: web.Request, app_id: int, campaign_id: str) -> cursors.PageRequest:
    """The campaign users page a GetCampaign asks for: `?limit=&next=&prev=` as the npm SDK
    sends it, or `?payload={"users": {limit, next, prev}}`."""
    users = query_payload(request).get("users")
    if users is not None and not isinstance(users, dict):
        raise bad_request("payload.users must be an object {limit, next, prev}")
    src, prefix = (users, "users.") if users is not None else (request.query, "")
    limit = cursors.limit_of(src.get("limit"), f"{prefix}limit", default=USERS_PAGE, hi=1000)
    return cursors.begin(src, ("campaign-users", app_id, campaign_id), {}, request.app[SETTINGS].cursor_secret,
                         limit=limit, field_prefix=prefix)


async def users_page(request: web.Request, r: Any, req: cursors.PageRequest) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """One page of a user_ids campaign's users (user objects, by id); segment campaigns have none."""
    ids = sorted(r["user_ids"])
    pos = cursors.typed_position(req, ["text"])
    if pos is None:
        window = ids[:req.limit + 1]
    elif req.backwards:
        end = bisect.bisect_left(ids, pos[0])
        window = ids[max(0, end - req.limit - 1):end][::-1]
    else:
        start = bisect.bisect_right(ids, pos[0])
        window = ids[start:start + req.limit + 1]
    page, links = cursors.finish(req, window, lambda u: [u], request.app[SETTINGS].cursor_secret)
    return await campaign_view.user_objects(request.app[POOL], r["app_id"], page), links


async def paged_view(
    request: web.Request, r: Any, req: cursors.PageRequest | None = None,
) -> tuple[dict[str, Any], dict[str, str]]:
    """The campaign object with its segments, sender and a page of users (the first unless
    `req` asks for another), and that page's cursors."""
    pool = request.app[POOL]
    stats = await ledger.stats_many(pool, r["app_id"], [r["id"]])
    rel = (await campaign_view.related(pool, r["app_id"], [r], user_limit=None))[r["id"]]
    if req is None:
        req = cursors.begin({}, ("campaign-users", r["app_id"], r["id"]), {}, request.app[SETTINGS].cursor_secret,
                            limit=USERS_PAGE)
    users, links = await users_page(request, r, req)
    return campaigns.view(r, stats.get(r["id"]), segments=rel["segments"], sender=rel["sender"], users=users), links


async def view(request: web.Request, r: Any) -> dict[str, Any]:
    return (await paged_view(request, r))[0]


async def answer(request: web.Request, r: Any, *, status: int = 200, req: cursors.PageRequest | None = None) -> web.Response:
    """Create, get and start answer the users pager at the top level, as the hosted API does."""
    view, links = await paged_view(request, r, req)
    return ok(request, {"campaign": view, "users": links}, status=status)

"""Per-member channel state, as the hosted API has it: HideChannel, ShowChannel and the member
partial update (archive, pin, custom member data)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from broadcaster.api.channels import path_cid, user_ref
from broadcaster.errors import bad_request, not_found
from broadcaster.http import ok, read_json
from broadcaster.keys import POOL
from broadcaster.middleware import current_app
from broadcaster.store import channels as store
from broadcaster.store import members as member_store
from broadcaster.validate import ident, no_nul

routes = web.RouteTableDef()
# Built-in member fields a partial update cannot touch (archived/pinned are handled apart).
RESERVED = frozenset({"user_id", "user", "channel_role", "role", "created_at", "updated_at", "hidden",
                      "archived_at", "pinned_at", "banned", "shadow_banned", "is_moderator", "invited"})


async def _member_cid(request: web.Request) -> str:
    ctype, cid_id = path_cid(request)
    cid = f"{ctype}:{cid_id}"
    if await store.get(request.app[POOL], current_app(request).id, cid) is None:
        raise not_found(f"channel {cid!r}")
    return cid


async def _set_hidden(request: web.Request, hidden: bool) -> web.Response:
    app = current_app(request)
    body = await read_json(request, required=True)
    user_id = user_ref(body, "body")
    if user_id is None:
        raise bad_request("user_id (or user.id) is required")
    if body.get("clear_history") not in (None, False):
        raise bad_request("clear_history is not supported: broadcaster keeps the channel's messages")
    cid = await _member_cid(request)
    if not await member_store.set_hidden(request.app[POOL], app.id, cid, user_id, hidden):
        raise bad_request(f"user_id: {user_id!r} is not a member of channel {cid!r}")
    return ok(request, {})


@routes.post("/channels/{type}/{id}/hide", name="HideChannel")
async def hide_channel(request: web.Request) -> web.Response:
    """Hidden for that member until someone else writes in the channel (or /show)."""
    return await _set_hidden(request, True)


@routes.post("/channels/{type}/{id}/show", name="ShowChannel")
async def show_channel(request: web.Request) -> web.Response:
    return await _set_hidden(request, False)


def _flag(set_: dict[str, Any], unset: list[str], key: str) -> bool | None:
    if key in unset:
        return False
    v = set_.get(key)
    if v is not None and not isinstance(v, bool):
        raise bad_request(f"set.{key} must be a boolean")
    return v


async def _update_member(request: web.Request, user_id: str) -> web.Response:
    app = current_app(request)
    body = await read_json(request, required=True)
    set_ = body.get("set") or {}
    unset = body.get("unset") or []
    if not isinstance(set_, dict):
        raise bad_request("set must be an object")
    if not isinstance(unset, list) or not all(isinstance(k, str) for k in unset):
        raise bad_request("unset must be a list of field names")
    for key in [*set_, *unset]:
        if key in RESERVED:
            raise bad_request(f"{key} cannot be changed by a partial member update")
    no_nul(set_, "set")
    no_nul(unset, "unset")
    archived, pinned = _flag(set_, unset, "archived"), _flag(set_, unset, "pinned")
    custom = {k: v for k, v in set_.items() if k not in ("archived", "pinned")}
    drop = [k for k in unset if k not in ("archived", "pinned")]
    cid = await _member_cid(request)
    row = await member_store.update_member(request.app[POOL], app.id, cid, user_id, archived=archived, pinned=pinned,
                                    custom_set=custom, custom_unset=drop)
    if row is None:
        raise not_found(f"member {user_id!r} of channel {cid!r}")
    return ok(request, {"channel_member": store.member_dict(row)})


@routes.patch("/channels/{type}/{id}/member/{user_id}", name="UpdateMemberPartial")
async def update_member_partial(request: web.Request) -> web.Response:
    """`set: {archived: true}` archives the channel for that member, as the SDKs' archive()."""
    return await _update_member(request, ident(request.match_info["user_id"], "user_id"))


@routes.patch("/channels/{type}/{id}/member", name="UpdateMemberPartialQuery")
async def update_member_partial_query(request: web.Request) -> web.Response:
    """The same with `?user_id=` (the form of the hosted API's OpenAPI document)."""
    uid = request.query.get("user_id")
    if uid is None:
        raise bad_request("user_id query parameter is required")
    return await _update_member(request, ident(uid, "user_id"))

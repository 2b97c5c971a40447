"""Channels: GetOrCreateChannel, GetOrCreateDistinctChannel, QueryChannels, SendMessage,
MarkRead, DeleteChannels."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import orjson
from aiohttp import web

from broadcaster import filters
from broadcaster.errors import bad_request, conflict, not_found
from broadcaster.http import ok, read_json
from broadcaster.ids import distinct_channel_id, member_pair, new_distinct_id, new_id
from broadcaster.keys import POOL
from broadcaster.middleware import current_app
from broadcaster.store import channels as store
from broadcaster.store import distinct, users
from broadcaster.store import members as member_store
from broadcaster.timefmt import fmt
from broadcaster.validate import CID_RE, ID_RE, TYPE_RE, ident, integer, obj

routes = web.RouteTableDef()

MAX_MEMBERS = 1000
MAX_CUSTOM_BYTES = 10_240
CHANNEL_RESERVED = frozenset({
    "id", "type", "cid", "created_by", "created_by_id", "members", "team", "created_at", "updated_at",
    "deleted_at", "member_count", "frozen", "disabled", "config",
})
MESSAGE_RESERVED = frozenset({
    "id", "text", "type", "user", "user_id", "cid", "attachments", "created_at", "updated_at", "campaign_id",
})
DEFAULT_SORT = [("created_at", -1)]


def _custom(d: dict[str, Any], reserved: frozenset[str], path: str) -> dict[str, Any]:
    custom = {k: v for k, v in d.items() if k not in reserved}
    if len(orjson.dumps(custom)) > MAX_CUSTOM_BYTES:
        raise bad_request(f"{path}: custom data is larger than {MAX_CUSTOM_BYTES} bytes")
    return custom


def user_ref(d: dict[str, Any], path: str, id_key: str = "user_id", obj_key: str = "user") -> str | None:
    """A user given as `<id_key>` or `<obj_key>: {"id"}` (the SDKs send either)."""
    uid = d.get(id_key)
    if uid is None and isinstance(d.get(obj_key), dict):
        uid = d[obj_key].get("id")
        return ident(uid, f"{path}.{obj_key}.id") if uid is not None else None
    return ident(uid, f"{path}.{id_key}") if uid is not None else None


def _members(data: dict[str, Any]) -> list[str]:
    raw = data.get("members")
    if raw is None:
        return []
    if not isinstance(raw, list) or len(raw) > MAX_MEMBERS:
        raise bad_request(f"data.members must be a list of at most {MAX_MEMBERS} user ids or {{user_id}} objects")
    out: list[str] = []
    for i, m in enumerate(raw):
        if isinstance(m, dict):
            uid = user_ref(m, f"data.members[{i}]")
            if uid is None:
                raise bad_request(f"data.members[{i}].user_id is required")
        else:
            uid = ident(m, f"data.members[{i}]")
        out.append(uid)
    return list(dict.fromkeys(out))


MEMBER_STATES = ("hidden", "archived", "pinned")


def member_states(flt: Any) -> tuple[Any, dict[str, bool]]:
    """Split the per-member pseudo-fields (top level of filter_conditions) from the filter."""
    if not isinstance(flt, dict) or not any(k in flt for k in MEMBER_STATES):
        return flt, {}
    rest, states = dict(flt), {}
    for key in MEMBER_STATES:
        if key not in rest:
            continue
        v = rest.pop(key)
        if isinstance(v, dict) and list(v) == ["$eq"]:
            v = v["$eq"]
        if not isinstance(v, bool):
            raise bad_request(f"filter_conditions.{key} must be true or false (or {{\"$eq\": true|false}})")
        states[key] = v
    return rest, states


def path_cid(request: web.Request) -> tuple[str, str | None]:
    ctype = request.match_info["type"]
    if not TYPE_RE.match(ctype):
        raise bad_request(f"type is not a valid channel type: {ctype[:80]!r}")
    cid_id = request.match_info.get("id")
    if cid_id is not None and not ID_RE.match(cid_id):
        raise bad_request(f"id is not a valid channel id: {cid_id[:80]!r}")
    return ctype, cid_id


async def _state(pool: Any, app_id: int, rows: list[Any], msg_limit: int, member_limit: int) -> list[dict[str, Any]]:
    """{channel, members, messages, read} for each channel row, three queries in all."""
    cids = [r["cid"] for r in rows]
    members: dict[str, list[Any]] = defaultdict(list)
    messages: dict[str, list[Any]] = defaultdict(list)
    reads: dict[str, list[Any]] = defaultdict(list)
    if cids:
        for r in await store.members_of(pool, app_id, cids, member_limit):
            members[r["cid"]].append(store.member_dict(r))
        for r in await store.messages_of(pool, app_id, cids, msg_limit):
            messages[r["cid"]].append(store.message_dict(r))
        for r in await store.reads_of(pool, app_id, cids, member_limit):
            reads[r["cid"]].append(store.read_dict(r))
    return [
        {"channel": store.channel_dict(r), "members": members[r["cid"]], "messages": messages[r["cid"]],
         "read": reads[r["cid"]]}
        for r in rows
    ]


async def _distinct_id(pool: Any, app_id: int, ctype: str, member_ids: list[str]) -> tuple[str, tuple[str, str] | None]:
    """The distinct channel's id, and the member pair when it is a new 1:1 one. Channels of
    one or two users are found by pair (their ids are time-ordered: store/distinct.py);
    larger ones keep the id derived from their members."""
    ids = sorted(set(member_ids), key=str.encode)
    if len(ids) > 2:
        return distinct_channel_id(ids), None
    pair = member_pair(ids[0], ids[-1])
    found = await distinct.find(pool, app_id, ctype, *pair)
    return (found, None) if found is not None else (new_distinct_id(), pair)


async def _get_or_create(request: web.Request, ctype: str, cid_id: str | None) -> web.Response:
    app = current_app(request)
    pool = request.app[POOL]
    body = await read_json(request)
    data = obj(body, "data") or {}
    member_ids = _members(data)
    pair: tuple[str, str] | None = None  # set: a new 1:1 distinct channel, created by its pair
    if cid_id is None:
        if not member_ids:
            raise bad_request("data.members is required for a channel without id (the distinct channel of its members)")
        cid_id, pair = await _distinct_id(pool, app.id, ctype, member_ids)
    msg_opts = obj(body, "messages") or {}
    msg_limit = integer(msg_opts, "limit", path="messages.limit", lo=0, hi=300, default=25)
    mem_opts = obj(body, "members") or {}
    member_limit = integer(mem_opts, "limit", path="members.limit", lo=0, hi=300, default=100)
    assert msg_limit is not None and member_limit is not None
    cid = f"{ctype}:{cid_id}"
    row = await store.get(pool, app.id, cid)
    created = False
    if row is None:
        creator = data.get("created_by_id")
        creator = ident(creator, "data.created_by_id") if creator is not None else user_ref(
            data, "data", "created_by_id", "created_by")
        if creator is None:
            raise bad_request("data.created_by_id (or data.created_by.id) is required to create a channel")
        team = data.get("team")
        if team is not None and (not isinstance(team, str) or len(team) > 255):
            raise bad_request("data.team must be a string")
        custom = _custom(data, CHANNEL_RESERVED, "data")
        known = await users.existing_ids(pool, app.id, [creator, *member_ids])
        if creator not in known:
            raise bad_request(f"data.created_by_id: user {creator!r} does not exist")
        missing = [m for m in member_ids if m not in known]
        if missing:
            raise bad_request(f"data.members: users {missing[:20]} do not exist")
        async with pool.acquire() as conn:
            created = await store.create(conn, app.id, ctype, cid_id, creator, team, custom, member_ids, pair=pair)
        if pair is not None and not created:  # a concurrent call created the pair's channel first
            cid = f"{ctype}:{await distinct.find(pool, app.id, ctype, *pair)}"
        row = await store.get(pool, app.id, cid)
        if row is None:  # deleted by a concurrent call between create and read
            raise not_found(f"channel {cid!r}")
    state = (await _state(pool, app.id, [row], msg_limit, member_limit))[0]
    return ok(request, {**state, "created": created})


@routes.post("/channels/{type}/{id}/query", name="GetOrCreateChannel")
async def get_or_create_channel(request: web.Request) -> web.Response:
    ctype, cid_id = path_cid(request)
    return await _get_or_create(request, ctype, cid_id)


@routes.post("/channels/{type}/query", name="GetOrCreateDistinctChannel")
async def get_or_create_distinct_channel(request: web.Request) -> web.Response:
    ctype, _ = path_cid(request)
    return await _get_or_create(request, ctype, None)


@routes.post("/channels", name="QueryChannels")
async def query_channels(request: web.Request) -> web.Response:
    app = current_app(request)
    body = await read_json(request)
    params = filters.Params(start=[app.id])
    flt, states = member_states(body.get("filter_conditions"))
    where = filters.compile_filter(flt, filters.CHANNEL_SCHEMA, params, field="filter_conditions")
    user_id = user_ref(body, "body")
    if states and user_id is None:
        raise bad_request(f"filter_conditions.{next(iter(states))} needs user_id (or user.id): whose channels")
    if user_id is not None:
        # Hidden and archived channels of that user are left out unless the filter asks (SPEC 5).
        wanted = {"hidden": False, "archived": False, **states}
        user_param = params.add(user_id)
        where = " AND ".join([f"({where})", *(member_store.member_state_sql(user_param, k, v) for k, v in wanted.items())])
    order = filters.compile_sort(body.get("sort"), filters.CHANNEL_SCHEMA, default=DEFAULT_SORT)
    if not any(c == "cid" for c, _ in order):
        order.append(("cid", 1))  # a total order keeps offset pages stable
    limit = integer(body, "limit", lo=1, hi=100, default=10)
    offset = integer(body, "offset", lo=0, hi=100_000, default=0)
    msg_limit = integer(body, "message_limit", lo=0, hi=300, default=25)
    member_limit = integer(body, "member_limit", lo=0, hi=300, default=100)
    assert limit is not None and offset is not None and msg_limit is not None and member_limit is not None
    pool = request.app[POOL]
    rows = await store.query(pool, app.id, where, params.values[1:], order, limit, offset)
    if body.get("state") is False:
        return ok(request, {"channels": [{"channel": store.channel_dict(r)} for r in rows]})
    return ok(request, {"channels": await _state(pool, app.id, rows, msg_limit, member_limit)})


@routes.post("/channels/{type}/{id}/message", name="SendMessage")
async def send_message(request: web.Request) -> web.Response:
    app = current_app(request)
    ctype, cid_id = path_cid(request)
    body = await read_json(request, required=True)
    msg = obj(body, "message", required=True)
    assert msg is not None
    user_id = user_ref(msg, "message")
    if user_id is None:
        raise bad_request("message.user_id (or message.user.id) is required")
    text = msg.get("text") or ""
    if not isinstance(text, str) or len(text) > 20_000:
        raise bad_request("message.text must be a string of at most 20000 characters")
    attachments = msg.get("attachments") or []
    if not isinstance(attachments, list) or len(attachments) > 30 or not all(isinstance(a, dict) for a in attachments):
        raise bad_request("message.attachments must be a list of at most 30 objects")
    mtype = msg.get("type") or "regular"
    if mtype not in ("regular", "system"):
        raise bad_request("message.type must be 'regular' or 'system'")
    msg_id = ident(msg["id"], "message.id") if msg.get("id") is not None else new_id()
    custom = _custom(msg, MESSAGE_RESERVED, "message")
    cid = f"{ctype}:{cid_id}"
    pool = request.app[POOL]
    if await store.get(pool, app.id, cid) is None:
        raise not_found(f"channel {cid!r}")
    if not await users.existing_ids(pool, app.id, [user_id]):
        raise bad_request(f"message.user_id: user {user_id!r} does not exist")
    row = await store.insert_message(pool, app.id, cid, msg_id, user_id, mtype, text, attachments, custom)
    if row is None:
        raise conflict(f"message.id: a message with id {msg_id!r} already exists")
    return ok(request, {"message": store.message_dict(row)})


@routes.post("/channels/{type}/{id}/read", name="MarkRead")
async def mark_read(request: web.Request) -> web.Response:
    app = current_app(request)
    ctype, cid_id = path_cid(request)
    body = await read_json(request, required=True)
    user_id = user_ref(body, "body")
    if user_id is None:
        raise bad_request("user_id (or user.id) is required")
    cid = f"{ctype}:{cid_id}"
    pool = request.app[POOL]
    if await store.get(pool, app.id, cid) is None:
        raise not_found(f"channel {cid!r}")
    user = await users.get(pool, app.id, user_id)
    if user is None or user["deleted_at"] is not None:
        raise bad_request(f"user_id: user {user_id!r} does not exist")
    async with pool.acquire() as conn:
        last_read = await store.mark_read(conn, app.id, cid, user_id)
    event = {
        "type": "message.read", "cid": cid, "channel_type": ctype, "channel_id": cid_id,
        "user": users.user_dict(user), "created_at": fmt(last_read),
    }
    return ok(request, {"event": event})


@routes.post("/channels/delete", name="DeleteChannels")
async def delete_channels(request: web.Request) -> web.Response:
    app = current_app(request)
    body = await read_json(request, required=True)
    cids = body.get("cids")
    if not isinstance(cids, list) or not cids or len(cids) > 100:
        raise bad_request("cids must be a list of 1 to 100 channel cids")
    for i, c in enumerate(cids):
        ident(c, f"cids[{i}]", CID_RE)
    hard = body.get("hard_delete") is True
    async with request.app[POOL].acquire() as conn:
        found = await store.delete(conn, app.id, cids, hard)
    # Done synchronously; the task id keeps the hosted API's response shape.
    result = {c: {"status": "ok" if c in found else "not_found"} for c in cids}
    return ok(request, {"task_id": new_id(), "result": result})

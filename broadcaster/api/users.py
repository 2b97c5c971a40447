"""Users: UpsertUsers, UpdateUsersPartial, QueryUsers, DeleteUser, DeleteUsers."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from broadcaster import filters
from broadcaster.errors import bad_request, not_found
from broadcaster.http import ok, query_payload, read_json
from broadcaster.ids import new_id
from broadcaster.keys import POOL, REDIS
from broadcaster.middleware import current_app
from broadcaster.services import triggers as triggered
from broadcaster.store import events
from broadcaster.store import users as store
from broadcaster.validate import ID_RE, ident, integer, obj

routes = web.RouteTableDef()

MAX_UPSERT = 10_000
MAX_PATCH = 100
MAX_DELETE = 100
MAX_CUSTOM_BYTES = 10_240
BUILTIN = ("name", "role", "teams", "language")
# Server-managed fields a client may echo back; never stored as custom data.
IGNORED = frozenset({"id", "created_at", "updated_at", "deleted_at", "online", "last_active"})
DEFAULT_SORT = [("created_at", 1), ("id", 1)]


def _opt_str(v: Any, path: str, max_len: int = 1000) -> str | None:
    if v is None:
        return None
    if not isinstance(v, str) or len(v) > max_len:
        raise bad_request(f"{path} must be a string of at most {max_len} characters")
    return v


def _teams(v: Any, path: str) -> list[str]:
    if v is None:
        return []
    if not isinstance(v, list) or not all(isinstance(t, str) and 0 < len(t) <= 255 for t in v) or len(v) > 100:
        raise bad_request(f"{path} must be a list of at most 100 non-empty strings")
    return list(dict.fromkeys(v))


def _role(v: Any, path: str) -> str | None:
    r = _opt_str(v, path, 64)
    if r is not None and not r:
        raise bad_request(f"{path} must not be empty")
    return r


def _custom(d: dict[str, Any], path: str) -> dict[str, Any]:
    custom = {k: v for k, v in d.items() if k not in IGNORED and k not in BUILTIN}
    if len(orjson.dumps(custom)) > MAX_CUSTOM_BYTES:
        raise bad_request(f"{path}: custom data is larger than {MAX_CUSTOM_BYTES} bytes")
    return custom


def parse_user(key: str, u: Any, path: str) -> store.UserIn:
    if not isinstance(u, dict):
        raise bad_request(f"{path} must be an object")
    uid = u.get("id")
    if uid is None:
        uid = key
    if uid != key:
        raise bad_request(f"{path}.id must equal its key {key!r}")
    ident(uid, f"{path}.id")
    return store.UserIn(
        id=uid, name=_opt_str(u.get("name"), f"{path}.name"), role=_role(u.get("role"), f"{path}.role"),
        teams=_teams(u.get("teams"), f"{path}.teams"), language=_opt_str(u.get("language"), f"{path}.language", 32),
        custom=_custom(u, path),
    )


def parse_patch(p: Any, path: str) -> store.Patch:
    if not isinstance(p, dict):
        raise bad_request(f"{path} must be an object")
    uid = ident(p.get("id"), f"{path}.id")
    set_ = obj(p, "set", path=f"{path}.set") or {}
    unset = p.get("unset") or []
    if not isinstance(unset, list) or not all(isinstance(k, str) for k in unset):
        raise bad_request(f"{path}.unset must be a list of field names")
    if not set_ and not unset:
        raise bad_request(f"{path}: set or unset is required")
    for k in set_:
        if k in IGNORED:
            raise bad_request(f"{path}.set.{k} cannot be changed")
        if k in unset:
            raise bad_request(f"{path}: {k!r} is both set and unset")
    for k in unset:
        if k in IGNORED:
            raise bad_request(f"{path}.unset: {k!r} cannot be unset")
    fields: dict[str, Any] = {}
    if "name" in set_:
        fields["name"] = _opt_str(set_["name"], f"{path}.set.name")
    if "role" in set_:
        fields["role"] = _role(set_["role"], f"{path}.set.role") or "user"
    if "teams" in set_:
        fields["teams"] = _teams(set_["teams"], f"{path}.set.teams")
    if "language" in set_:
        fields["language"] = _opt_str(set_["language"], f"{path}.set.language", 32)
    return store.Patch(
        id=uid, set_fields=fields, set_custom=_custom(set_, f"{path}.set"),
        unset_fields=[k for k in unset if k in BUILTIN], unset_custom=[k for k in unset if k not in BUILTIN],
    )


async def _notify_triggers(request: web.Request, app_id: int) -> None:
    """The write recorded user events if a triggered campaign listens to them: match them now
    (a job) rather than at the next 1 s tick."""
    if await events.listens_to_users(request.app[POOL], app_id):
        await triggered.notify(request.app[REDIS], app_id)


@routes.post("/users", name="UpsertUsers")
async def upsert_users(request: web.Request) -> web.Response:
    app = current_app(request)
    body = await read_json(request, required=True)
    raw = obj(body, "users", required=True)
    assert raw is not None
    if not raw or len(raw) > MAX_UPSERT:
        raise bad_request(f"users must hold between 1 and {MAX_UPSERT} users, got {len(raw)}")
    # Validate everything before writing anything: one bad user rejects the call.
    parsed = [parse_user(k, v, f"users.{k}") for k, v in raw.items()]
    rows = await store.upsert(request.app[POOL], app.id, parsed)
    await _notify_triggers(request, app.id)
    return ok(request, {"users": {r["id"]: store.user_dict(r) for r in rows}})


@routes.patch("/users", name="UpdateUsersPartial")
async def update_users_partial(request: web.Request) -> web.Response:
    app = current_app(request)
    body = await read_json(request, required=True)
    raw = body.get("users")
    if not isinstance(raw, list) or not raw or len(raw) > MAX_PATCH:
        raise bad_request(f"users must be a list of 1 to {MAX_PATCH} {{id, set, unset}} objects")
    patches = [parse_patch(p, f"users[{i}]") for i, p in enumerate(raw)]
    if len({p.id for p in patches}) != len(patches):
        raise bad_request("users: each id may appear once")
    async with request.app[POOL].acquire() as conn:
        try:
            rows = await store.patch(conn, app.id, patches)
        except store.MissingUser as e:
            raise not_found(f"user {e.user_id!r}") from None
    await _notify_triggers(request, app.id)
    return ok(request, {"users": {r["id"]: store.user_dict(r) for r in rows}})


@routes.get("/users", name="QueryUsers")
async def query_users(request: web.Request) -> web.Response:
    app = current_app(request)
    payload = query_payload(request)
    params = filters.Params(start=[app.id])
    where = filters.compile_filter(payload.get("filter_conditions"), filters.USER_SCHEMA, params, field="filter_conditions")
    order = filters.compile_sort(payload.get("sort"), filters.USER_SCHEMA, default=DEFAULT_SORT)
    if ("id", 1) not in order and ("id", -1) not in order:
        order.append(("id", 1))  # a total order keeps offset pages stable
    limit = integer(payload, "limit", lo=1, hi=1000, default=100)
    offset = integer(payload, "offset", lo=0, hi=100_000, default=0)
    include_deleted = payload.get("include_deleted") is True
    assert limit is not None and offset is not None
    rows = await store.query(request.app[POOL], app.id, where, params.values[1:], order, limit, offset, include_deleted)
    return ok(request, {"users": [store.user_dict(r) for r in rows]})


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("1", "true", "yes")


@routes.delete("/users/{id}", name="DeleteUser")
async def delete_user(request: web.Request) -> web.Response:
    app = current_app(request)
    uid = request.match_info["id"]
    if not ID_RE.match(uid):
        raise not_found(f"user {uid[:80]!r}")
    pool = request.app[POOL]
    rows = await (store.hard_delete if _flag(request, "hard_delete") else store.soft_delete)(pool, app.id, [uid])
    if not rows:
        raise not_found(f"user {uid!r}")
    return ok(request, {"user": store.user_dict(rows[0])})


@routes.post("/users/delete", name="DeleteUsers")
async def delete_users(request: web.Request) -> web.Response:
    app = current_app(request)
    body = await read_json(request, required=True)
    ids = body.get("user_ids")
    if not isinstance(ids, list) or not ids or len(ids) > MAX_DELETE:
        raise bad_request(f"user_ids must be a list of 1 to {MAX_DELETE} user ids")
    for i, uid in enumerate(ids):
        ident(uid, f"user_ids[{i}]")
    mode = body.get("user") or "soft"
    if mode not in ("soft", "hard"):
        raise bad_request("user must be 'soft' or 'hard'")
    pool = request.app[POOL]
    rows = await (store.hard_delete if mode == "hard" else store.soft_delete)(pool, app.id, ids)
    # Done synchronously; the task id keeps the hosted API's response shape.
    found = {r["id"] for r in rows}
    result = {uid: {"status": "ok" if uid in found else "not_found"} for uid in ids}
    return ok(request, {"task_id": new_id(), "result": result})

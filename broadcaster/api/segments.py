"""Segments: audiences of users or channels; explicit target lists with keyset pages."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from broadcaster import cursors
from broadcaster.api import pager
from broadcaster.errors import bad_request, not_found
from broadcaster.http import ok, read_json
from broadcaster.ids import new_id
from broadcaster.keys import POOL, REDIS, SETTINGS
from broadcaster.middleware import current_app
from broadcaster.store import segments, targets
from broadcaster.store.segments import SegmentRow
from broadcaster.validate import (
    CID_RE,
    ID_RE,
    boolean,
    ident,
    no_nul,
    obj,
    str_list,
    string,
)

routes = web.RouteTableDef()
logger = logging.getLogger("broadcaster.segments")
TYPES = ("user", "channel")
MAX_TARGETS = 10_000
EXCLUSIVE = "filter, all_users and all_sender_channels are mutually exclusive"


def serialize(seg: SegmentRow) -> dict[str, Any]:
    return segments.wire(seg)


def check_filter(flt: dict[str, Any], seg_type: str) -> None:
    """Compile once so a bad filter is a 400 at create/update, not a failed job later."""
    from broadcaster import filters

    no_nul(flt, "filter")

    schema = filters.USER_SCHEMA if seg_type == "user" else filters.CHANNEL_SCHEMA
    filters.compile_filter(flt, schema, filters.Params())


async def enqueue_size(request: web.Request, seg: SegmentRow) -> None:
    if seg.filter is None and not seg.all_users:
        return
    try:
        await request.app[REDIS].enqueue_job(
            "segment_size", seg.key, seg.size_version, _job_id=f"segsize:{seg.key}:{seg.size_version}"
        )
    except Exception:  # the size cron retries unsized segments; the API answer stands
        logger.exception("could not enqueue the size job of segment %s", seg.id)


@routes.post("/segments", name="CreateSegment")
async def create_segment(request: web.Request) -> web.Response:
    app = current_app(request)
    body = await read_json(request, required=True)
    seg_type = body.get("type")
    if seg_type not in TYPES:
        raise bad_request(f"type must be 'user' or 'channel', got {seg_type!r}")
    seg_id = ident(body["id"], "id") if body.get("id") is not None else new_id()
    name = string(body, "name", max_len=1000) or ""
    description = string(body, "description", max_len=10_000) or ""
    flt = obj(body, "filter")
    no_nul(name, "name")
    no_nul(description, "description")
    all_users = boolean(body, "all_users") or False
    all_sender = boolean(body, "all_sender_channels") or False
    if sum([flt is not None, all_users, all_sender]) > 1:
        given = [k for k, v in (("filter", flt is not None), ("all_users", all_users),
                                ("all_sender_channels", all_sender)) if v]
        raise bad_request(f"{EXCLUSIVE}: got {' and '.join(given)}")
    if all_users and seg_type != "user":
        raise bad_request("all_users is only valid on a user segment")
    if all_sender and seg_type != "channel":
        raise bad_request("all_sender_channels is only valid on a channel segment")
    if flt is not None:
        check_filter(flt, seg_type)
    seg = await segments.create(
        request.app[POOL], app.id, seg_id, seg_type, name, description, flt, all_users, all_sender
    )
    await enqueue_size(request, seg)
    return ok(request, {"segment": serialize(seg)}, status=201)


@routes.get("/segments/{id}", name="GetSegment")
async def get_segment(request: web.Request) -> web.Response:
    seg = await segments.get(request.app[POOL], current_app(request).id, request.match_info["id"])
    return ok(request, {"segment": serialize(seg)})


@routes.put("/segments/{id}", name="UpdateSegment")
async def update_segment(request: web.Request) -> web.Response:
    app = current_app(request)
    body = await read_json(request, required=True)
    pool = request.app[POOL]
    seg = await segments.get(pool, app.id, request.match_info["id"])
    name = string(body, "name", max_len=1000)
    description = string(body, "description", max_len=10_000)
    flt = obj(body, "filter")
    no_nul(name, "name")
    no_nul(description, "description")
    if flt is not None:
        if seg.filter is None:
            raise bad_request(
                f"filter can only be changed on a filter segment; segment {seg.id!r} is {seg.kind}"
            )
        check_filter(flt, seg.type)
    for key in ("all_users", "all_sender_channels", "type"):
        if body.get(key) is not None and body[key] != getattr(seg, key):
            raise bad_request(f"{key} cannot be changed after create (create a new segment)")
    updated = await segments.update(pool, app.id, seg.id, name=name, description=description, filter_=flt)
    if updated.size_version != seg.size_version:
        await enqueue_size(request, updated)
    return ok(request, {"segment": serialize(updated)})


@routes.delete("/segments/{id}", name="DeleteSegment")
async def delete_segment(request: web.Request) -> web.Response:
    app = current_app(request)
    async with request.app[POOL].acquire() as conn:
        key = await segments.delete(conn, app.id, request.match_info["id"])
    try:
        await request.app[REDIS].enqueue_job("segment_purge", key, _job_id=f"segpurge:{key}")
    except Exception:  # leftover targets of a dead key are invisible; only space is lost
        logger.exception("could not enqueue the target purge of segment key %s", key)
    return ok(request, {})


SEGMENT_SORT_DEFAULT = [("created_at", 1)]


def _segment_schema() -> Any:
    from broadcaster import filters

    c = filters.Column
    return filters.Schema(columns={
        "id": c("id", "text"), "name": c("name", "text"), "type": c("type", "text"),
        "created_at": c("created_at", "time"), "updated_at": c("updated_at", "time"),
    })


@routes.post("/segments/query", name="QuerySegments")
async def query_segments(request: web.Request) -> web.Response:
    app = current_app(request)
    body = await read_json(request)
    secret = request.app[SETTINGS].cursor_secret
    p = pager.plan(body, ("segments", app.id), _segment_schema(), SEGMENT_SORT_DEFAULT, secret,
                   app_id=app.id, default_limit=100, max_limit=1000)
    rows = await segments.query(request.app[POOL], app.id, p.where, p.params, p.order, p.req.limit + 1)
    page, links = pager.finish(p, rows, getattr, secret)
    return ok(request, {"segments": [serialize(r) for r in page], **links})


# ---- explicit targets ----

def _target_ids(body: dict[str, Any], seg: SegmentRow) -> list[str]:
    pattern = CID_RE if seg.type == "channel" else ID_RE
    ids = str_list(body, "target_ids", required=True, min_items=1, max_items=MAX_TARGETS, pattern=pattern)
    assert ids is not None
    return ids


@routes.post("/segments/{id}/addtargets", name="AddSegmentTargets")
async def add_targets(request: web.Request) -> web.Response:
    app = current_app(request)
    body = await read_json(request, required=True)
    async with request.app[POOL].acquire() as conn:
        seg = await segments.get(conn, app.id, request.match_info["id"])
        ids = _target_ids(body, seg)
        seg, added = await targets.add(conn, app.id, seg.id, ids)
    return ok(request, {"added": added, "size": (seg.size or 0) + added})


@routes.post("/segments/{id}/deletetargets", name="DeleteSegmentTargets")
async def delete_targets(request: web.Request) -> web.Response:
    app = current_app(request)
    body = await read_json(request, required=True)
    async with request.app[POOL].acquire() as conn:
        seg = await segments.get(conn, app.id, request.match_info["id"])
        ids = _target_ids(body, seg)
        seg, deleted = await targets.remove(conn, app.id, seg.id, ids)
    return ok(request, {"deleted": deleted, "size": (seg.size or 0) - deleted})


@routes.get("/segments/{id}/target/{target_id}", name="SegmentTargetExists")
async def target_exists(request: web.Request) -> web.Response:
    app = current_app(request)
    pool = request.app[POOL]
    seg = await segments.get(pool, app.id, request.match_info["id"])
    target_id = request.match_info["target_id"]
    valid = (CID_RE if seg.type == "channel" else ID_RE).match(target_id)
    found = await targets.get(pool, seg.key, target_id) if valid else None
    if found is None:
        raise not_found(f"target {target_id[:300]!r} in segment {seg.id!r}")
    return ok(request, {"target": {**found, "segment_id": seg.id, "app_pk": app.id}})


@routes.post("/segments/{id}/targets/query", name="QuerySegmentTargets")
async def query_targets(request: web.Request) -> web.Response:
    app = current_app(request)
    body = await read_json(request)
    pool = request.app[POOL]
    seg = await segments.get(pool, app.id, request.match_info["id"])
    secret = request.app[SETTINGS].cursor_secret
    limit = cursors.limit_of(body.get("limit"), "limit", default=100, hi=MAX_TARGETS)
    # The segment key, not its id: a cursor of a deleted segment does not page a new one
    # created under the same id.
    # The vendor's OpenAPI (and so its newer SDKs) spells these two `Filter` and `Sort`.
    flt = body.get("filter") if body.get("filter") is not None else body.get("Filter")
    sort_in = body.get("sort") if body.get("sort") is not None else body.get("Sort")
    req = cursors.begin(body, ("targets", app.id, seg.key), {"filter": flt or {}, "sort": sort_in}, secret,
                        limit=limit)
    sort = targets.parse_sort(req.query.get("sort"))
    params: list[Any] = [seg.key]
    conds = targets.compile_filter(req.query.get("filter") or None, params)
    position = cursors.typed_position(req, ["time", "text"] if sort[0] == "created_at" else ["text"])
    sql, args = targets.page_sql(seg.key, conds, params, sort, position, req.backwards, limit)
    rows = await targets.fetch_index_ordered(pool, sql, args)
    page, links = cursors.finish(req, [dict(r) for r in rows], lambda r: targets.position_of(r, sort[0]), secret)
    for r in page:
        r["segment_id"], r["app_pk"] = seg.id, app.id
    return ok(request, {"targets": page, **links})

"""Segments screen: the list (name, type, size), create, one segment's targets page by page
(the API's cursors), adding targets by paste or by a file the browser sends in chunks of the
API's per-call limit (static/upload.js), delete. Every action is an API call (apicall.py)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import orjson
from aiohttp import web

from broadcaster.api.segments import MAX_TARGETS
from broadcaster.dashboard.apicall import ApiResult, call
from broadcaster.dashboard.apiform import cursor, form_str, json_answer, json_body, must, split_ids
from broadcaster.dashboard.render import confirmed, field_errors, redirect, render
from broadcaster.dashboard.session import require_session

PAGE = 25
TARGETS_PAGE = 50
KINDS = [("explicit", "A list of ids (add them below)"), ("filter", "A filter"),
         ("all_users", "All users"), ("all_sender_channels", "All the sender's channels")]
CREATE_FIELDS = ["id", "name", "description", "type", "filter", "all_users", "all_sender_channels"]


def _seg_path(seg_id: str) -> str:
    return f"/segments/{quote(seg_id, safe='')}"


def _page_url(seg_id: str) -> str:
    return f"/dashboard/segments/{quote(seg_id, safe='')}"


async def _list(request: web.Request, **ctx: Any) -> web.Response:
    body = {"limit": PAGE, "sort": [{"field": "created_at", "direction": -1}], **cursor(request.query)}
    page = must(await call(request, "POST", "/segments/query", json=body))
    ctx.setdefault("values", {"type": "user", "kind": "explicit"})
    return render(request, "segments.html", segments=page["segments"], next=page.get("next"),
                  prev=page.get("prev"), kinds=KINDS, **ctx)


@require_session
async def list_page(request: web.Request) -> web.StreamResponse:
    return await _list(request)


@require_session
async def create(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    values = {k: form_str(form, k) for k in ("id", "name", "description", "type", "kind", "filter")}
    body: dict[str, Any] = {"type": values["type"], "name": values["name"],
                            "description": values["description"]}
    if values["id"]:
        body["id"] = values["id"]
    kind = values["kind"]
    if kind == "filter":
        try:
            body["filter"] = orjson.loads(values["filter"] or "null")
        except orjson.JSONDecodeError as e:
            return await _list(request, http_status=400, values=values,
                               errors={"filter": f"filter is not valid JSON: {e}"})
        if body["filter"] is None:
            return await _list(request, http_status=400, values=values,
                               errors={"filter": "filter is required for a filter segment, e.g. {\"country\": \"NL\"}"})
    elif kind in ("all_users", "all_sender_channels"):
        body[kind] = True
    res = await call(request, "POST", "/segments", json=body)
    if not res.ok:
        return await _list(request, http_status=res.status, values=values, errors=field_errors(res, CREATE_FIELDS))
    seg = res.body["segment"]
    raise redirect(request, _page_url(seg["id"]), flash=f"Segment {seg['name'] or seg['id']} created.")


async def _detail(request: web.Request, seg_id: str, **ctx: Any) -> web.Response:
    seg = must(await call(request, "GET", _seg_path(seg_id)))["segment"]
    explicit = seg["filter"] is None and not seg["all_users"] and not seg["all_sender_channels"]
    targets: list[dict[str, Any]] = []
    links: dict[str, Any] = {}
    if explicit:
        page = must(await call(request, "POST", _seg_path(seg_id) + "/targets/query",
                               json={"limit": TARGETS_PAGE, **cursor(request.query)}))
        targets, links = page["targets"], {k: page.get(k) for k in ("next", "prev")}
    return render(request, "segment.html", seg=seg, explicit=explicit, targets=targets,
                  next=links.get("next"), prev=links.get("prev"), chunk=MAX_TARGETS,
                  filter_json=orjson.dumps(seg["filter"], option=orjson.OPT_INDENT_2).decode()
                  if seg["filter"] is not None else "", page_url=_page_url(seg_id), **ctx)


@require_session
async def detail(request: web.Request) -> web.StreamResponse:
    return await _detail(request, request.match_info["id"])


@require_session
async def add_pasted(request: web.Request) -> web.StreamResponse:
    seg_id = request.match_info["id"]
    text = form_str(await request.post(), "target_ids")
    ids = split_ids(text)
    if not ids:
        return await _detail(request, seg_id, http_status=400, values={"target_ids": text},
                             errors={"target_ids": "target_ids: paste at least one id"})
    res = await call(request, "POST", _seg_path(seg_id) + "/addtargets", json={"target_ids": ids})
    if not res.ok:
        return await _added_error(request, seg_id, res, text)
    raise redirect(request, _page_url(seg_id),
                   flash=f"Added {res.body['added']} of {len(ids)} ids; the segment now has {res.body['size']}.")


async def _added_error(request: web.Request, seg_id: str, res: ApiResult, text: str) -> web.Response:
    if res.status == 404:
        must(res)
    return await _detail(request, seg_id, http_status=res.status, values={"target_ids": text},
                         errors={"target_ids": res.message})


@require_session
async def add_chunk(request: web.Request) -> web.StreamResponse:
    """One chunk of an upload (at most the API's per-call limit), posted by upload.js; the
    answer is the API's, so the page shows its message when a chunk is refused."""
    body = await json_body(request)
    res = await call(request, "POST", _seg_path(request.match_info["id"]) + "/addtargets",
                     json={"target_ids": body.get("target_ids")})
    return json_answer(res)


@require_session
async def delete(request: web.Request) -> web.StreamResponse:
    seg_id = request.match_info["id"]
    ask = await confirmed(request, f"Delete segment {seg_id}? Its targets are removed too.",
                          "delete", _page_url(seg_id))
    if ask is not None:
        return ask
    res = await call(request, "DELETE", _seg_path(seg_id))
    if not res.ok:
        if res.status == 404:
            must(res)
        return await _detail(request, seg_id, http_status=res.status, errors={"_form": res.message})
    raise redirect(request, "/dashboard/segments", flash=f"Segment {seg_id} deleted.")


ROUTES = [
    ("GET", "/dashboard/segments", list_page, "Segments"),
    ("POST", "/dashboard/segments", create, "CreateSegment"),
    ("GET", "/dashboard/segments/{id}", detail, "Segment"),
    ("POST", "/dashboard/segments/{id}/addtargets", add_pasted, "AddTargets"),
    ("POST", "/dashboard/segments/{id}/addtargets.json", add_chunk, "AddTargetsChunk"),
    ("POST", "/dashboard/segments/{id}/delete", delete, "DeleteSegment"),
]

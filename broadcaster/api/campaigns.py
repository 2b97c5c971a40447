"""Campaign endpoints: CRUD, query, lifecycle, test send, recipients ledger and stats."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from aiohttp import web

from broadcaster import analytics, cursors, filters, ids, lifecycle, timefmt
from broadcaster.api import campaign_out, pager
from broadcaster.api import series as series_api
from broadcaster.domain import policy, variants
from broadcaster.errors import ApiError, bad_request
from broadcaster.http import ok, read_json
from broadcaster.keys import PLANNERS, POOL, REDIS, SETTINGS
from broadcaster.middleware import current_app
from broadcaster.services import campaigns as use_cases
from broadcaster.services import planning, recurring
from broadcaster.store import (
    audience_plans,
    campaign_view,
    campaigns,
    interactions,
    ledger,
    recipients,
)
from broadcaster.store import occurrence_views as family_views
from broadcaster.store.ledger import Tx
from broadcaster.templating import compile_campaign
from broadcaster.validate import ID_RE, TYPE_RE, boolean, ident, obj, str_list, string

routes = web.RouteTableDef()
SORT_DEFAULT = [("created_at", -1), ("id", 1)]
MAX_MEMBERS = 1000  # channel_template.members and members_template, the hosted API's limit


def _compile_all(mt: dict[str, Any], ct: dict[str, Any] | None) -> None:
    compile_campaign(mt, ct)
    _check_variants(mt, ct)


def _check_variants(mt: dict[str, Any], ct: dict[str, Any] | None) -> None:
    for i, v in enumerate(variants.validate(mt) or []):
        try:
            compile_campaign(variants.template_of(mt, v), ct)
        except ApiError as e:
            e.message = e.message.replace("message_template.", f"message_template.variants[{i}].")
            raise


async def _validate(request: web.Request, body: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The editable fields of a create/update body, and the audience kind."""
    app = current_app(request)
    pool = request.app[POOL]
    seg_ids = str_list(body, "segment_ids", min_items=1, max_items=25, pattern=ID_RE)
    user_ids = str_list(body, "user_ids", min_items=1, max_items=10_000, pattern=ID_RE)
    if (seg_ids is None) == (user_ids is None) and not (body.get("type") == "triggered" and seg_ids is None):
        # a triggered campaign may have neither: anyone its trigger matches receives it
        raise bad_request("exactly one of segment_ids and user_ids is required")
    sender_id = ident(body.get("sender_id"), "sender_id") if body.get("sender_id") is not None else None
    if sender_id is None:
        raise bad_request("sender_id is required")
    sender_mode = string(body, "sender_mode")
    if sender_mode not in (None, "include", "exclude"):
        raise bad_request(f"sender_mode must be 'include' or 'exclude' (or omitted), got {sender_mode!r}")
    visibility = string(body, "sender_visibility")
    if visibility not in (None, "hidden", "archived"):
        raise bad_request(f"sender_visibility must be 'hidden' or 'archived' (or omitted), got {visibility!r}")
    mt = obj(body, "message_template", required=True)
    assert mt is not None
    string(mt, "text", path="message_template.text", required=True, max_len=20_000)
    string(mt, "poll_id", path="message_template.poll_id")
    obj(mt, "custom", path="message_template.custom")
    att = mt.get("attachments")
    if att is not None and (not isinstance(att, list) or not all(isinstance(a, dict) for a in att)):
        raise bad_request("message_template.attachments must be a list of objects")
    create_channels = bool(boolean(body, "create_channels"))
    ct = obj(body, "channel_template", required=create_channels)
    if ct is not None:
        ident(ct.get("type"), "channel_template.type", TYPE_RE)
        string(ct, "id", path="channel_template.id", max_len=1000, allow_empty=False)
        string(ct, "team", path="channel_template.team")
        obj(ct, "custom", path="channel_template.custom")
        str_list(ct, "members", path="channel_template.members", max_items=MAX_MEMBERS, pattern=ID_RE)
        mtpl = ct.get("members_template")
        if mtpl is not None:
            if not isinstance(mtpl, list) or len(mtpl) > MAX_MEMBERS:
                raise bad_request(
                    f"channel_template.members_template must be a list of at most {MAX_MEMBERS} objects")
            for i, m in enumerate(mtpl):
                p = f"channel_template.members_template[{i}]"
                if not isinstance(m, dict):
                    raise bad_request(f"{p} must be an object")
                ident(m.get("user_id"), f"{p}.user_id")
                string(m, "channel_role", path=f"{p}.channel_role", max_len=64)
                obj(m, "custom", path=f"{p}.custom")
    # compiling a 20,000-character template takes ~0.25 s of CPU (each variant's too): never
    # on the event loop
    await asyncio.to_thread(_compile_all, mt, ct)
    kind = "user"
    if seg_ids is not None:
        kind = (await recipients.load_audience(pool, app.id, seg_ids, sender_id)).kind
        if kind == "channel" and body.get("type") == "triggered":
            raise bad_request("segment_ids of a triggered campaign must be user segments (who may be triggered)")
        if kind == "channel" and create_channels:
            raise bad_request("create_channels is meaningless for channel segments: they send into existing channels")
    if not await campaigns.user_exists(pool, app.id, sender_id):
        raise bad_request(f"sender_id {sender_id!r} is not an existing user")
    data = {
        "name": string(body, "name", max_len=1000) or "",
        "description": string(body, "description", max_len=10_000) or "",
        "segment_ids": list(dict.fromkeys(seg_ids or [])), "user_ids": list(dict.fromkeys(user_ids or [])),
        "sender_id": sender_id, "sender_mode": sender_mode, "message_template": mt,
        "create_channels": create_channels, "channel_template": ct,
        "skip_push": bool(boolean(body, "skip_push")), "skip_webhook": bool(boolean(body, "skip_webhook")),
        "sender_visibility": visibility, "show_channels": bool(boolean(body, "show_channels")),
        "track_clicks": bool(boolean(body, "track_clicks")),
        "winner": variants.validate_winner(body.get("winner") or mt.get("winner"), mt),
        **series_api.type_fields(body),
        **policy.campaign_fields(body, scheduled_kind=body.get("type") or "one_time"),
    }
    if data["send_in_local_time"] and data["winner"]:  # its passes are planned batches, not zones
        raise bad_request("send_in_local_time cannot be combined with winner: the winner's pass starts after"
                          " the last zone's local time plus the wait, too late for everyone's local time")
    return data, kind


@routes.post("/campaigns", name="CreateCampaign")
async def create_campaign(request: web.Request) -> web.Response:
    app = current_app(request)
    body = await read_json(request, required=True)
    cid = ident(body["id"], "id") if body.get("id") is not None else ids.time_ordered_id()
    data, _ = await _validate(request, body)
    series_api.check_create(cid, data)
    r = await use_cases.create(request.app[POOL], app.id, cid, data)
    return await campaign_out.answer(request, r, status=201)


@routes.get("/campaigns/{id}", name="GetCampaign")
async def get_campaign(request: web.Request) -> web.Response:
    app = current_app(request)
    r = await campaigns.get(request.app[POOL], app.id, request.match_info["id"])
    return await campaign_out.answer(request, r, req=campaign_out.users_page_request(request, app.id, r["id"]))


@routes.put("/campaigns/{id}", name="UpdateCampaign")
async def update_campaign(request: web.Request) -> web.Response:
    app = current_app(request)
    cid = request.match_info["id"]
    body = await read_json(request, required=True)
    data, _ = await _validate(request, body)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        row = await campaigns.get(conn, app.id, cid, lock="UPDATE")
        lifecycle.check("update", row["status"])
        r = await series_api.on_update(conn, row, await campaigns.update(conn, app.id, cid, data))
    return await campaign_out.answer(request, r)


@routes.delete("/campaigns/{id}", name="DeleteCampaign")
async def delete_campaign(request: web.Request) -> web.Response:
    app = current_app(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        row = await campaigns.get(conn, app.id, request.match_info["id"], lock="UPDATE")
        lifecycle.check("delete", row["status"])
        await audience_plans.check_idle(conn, app.id, row["id"])
        await series_api.on_delete(conn, row)
        await campaigns.delete(conn, app.id, [row["id"]], request.app[SETTINGS].delete_inline_max)
    return ok(request, {})


CAMPAIGN_SCHEMA = filters.Schema(columns={
    "id": filters.Column("id", "text"), "name": filters.Column("name", "text"),
    "status": filters.Column("status", "text"), "sender_id": filters.Column("sender_id", "text"),
    "segments": filters.Column("segment_ids", "text_array"),
    "type": filters.Column("type", "text"), "parent_id": filters.Column("parent_id", "text"),
    "created_at": filters.Column("created_at", "time"), "updated_at": filters.Column("updated_at", "time"),
})


@routes.post("/campaigns/query", name="QueryCampaigns")
async def query_campaigns(request: web.Request) -> web.Response:
    app = current_app(request)
    body = await read_json(request)
    secret = request.app[SETTINGS].cursor_secret
    p = pager.plan(body, ("campaigns", app.id), CAMPAIGN_SCHEMA, SORT_DEFAULT, secret,
                   app_id=app.id, default_limit=100, max_limit=1000)
    rows = await campaigns.query(request.app[POOL], app.id, p.where, p.params, p.order, p.req.limit + 1)
    page, links = pager.finish(p, rows, lambda r, c: r[c], secret)
    user_limit = cursors.limit_of(body.get("user_limit"), "user_limit", default=campaign_out.USERS_PAGE, hi=1000)
    stats = await ledger.stats_many(request.app[POOL], app.id, [r["id"] for r in page])
    rel = await campaign_view.related(request.app[POOL], app.id, page, user_limit=user_limit)
    return ok(request, {"campaigns": [campaigns.view(r, stats.get(r["id"]), **rel[r["id"]]) for r in page], **links})


@routes.post("/campaigns/{id}/start", name="StartCampaign")
async def start_campaign(request: web.Request) -> web.Response:
    app = current_app(request)
    body = await read_json(request)
    sched = timefmt.parse(body["scheduled_for"], "scheduled_for") if body.get("scheduled_for") is not None else None
    stop_at = timefmt.parse(body["stop_at"], "stop_at") if body.get("stop_at") is not None else None
    lifecycle.check_start_times(timefmt.now(), sched, stop_at)
    s = request.app[SETTINGS]

    async def flip(conn: Tx, row: asyncpg.Record) -> asyncpg.Record:
        if row["type"] != "one_time":
            return await series_api.start(conn, row, sched, stop_at)
        return await use_cases.flip_start(conn, row, sched, stop_at)

    r = await planning.start(request.app[POOL], request.app[REDIS], s.database_url, app.id,
                             request.match_info["id"], flip, batch_size=s.batch_size,
                             wait_s=s.start_wait_s, tasks=request.app[PLANNERS])
    return await campaign_out.answer(request, r)


async def _transition(request: web.Request, action: str, event: str) -> web.Response:
    app = current_app(request)
    async with request.app[POOL].acquire() as conn:
        async with conn.transaction():
            # FOR UPDATE waits for in-flight batches (they hold SHARE until they commit).
            row = await campaigns.get(conn, app.id, request.match_info["id"], lock="UPDATE")
            kids: list[str] = []
            if row["type"] == "recurring":
                r = await recurring.transition(conn, row, action)
            else:
                kids = await series_api.on_transition(conn, row, action)
                r = await campaigns.set_status(conn, row, action, event=event)
        if action == "resume":
            for cid in (r["id"], *kids):
                await use_cases.kick(request.app[REDIS], conn, app.id, cid, all_open=True)
    return ok(request, {"campaign": await campaign_out.view(request, r)})


@routes.post("/campaigns/{id}/stop", name="StopCampaign")
async def stop_campaign(request: web.Request) -> web.Response:
    return await _transition(request, "stop", "campaign.stopped")


@routes.post("/campaigns/{id}/pause", name="PauseCampaign")
async def pause_campaign(request: web.Request) -> web.Response:
    return await _transition(request, "pause", "campaign.paused")


@routes.post("/campaigns/{id}/resume", name="ResumeCampaign")
async def resume_campaign(request: web.Request) -> web.Response:
    return await _transition(request, "resume", "campaign.resumed")


@routes.post("/campaigns/{id}/test", name="TestCampaign")
async def test_campaign(request: web.Request) -> web.Response:
    app = current_app(request)
    body = await read_json(request, required=True)
    users = str_list(body, "users", required=True, min_items=1, max_items=100, pattern=ID_RE)
    assert users is not None
    row, sent = await use_cases.test(request.app[POOL], app.id, request.match_info["id"], users,
                                     request.app[SETTINGS].tracking)
    return ok(request, {"campaign": await campaign_out.view(request, row), "sent": sent})


@routes.get("/campaigns/{id}/recipients", name="QueryCampaignRecipients")
async def query_recipients(request: web.Request) -> web.Response:
    app = current_app(request)
    camp = await campaigns.get(request.app[POOL], app.id, request.match_info["id"])
    secret = request.app[SETTINGS].cursor_secret
    limit = cursors.limit_of(request.query.get("limit"), "limit", default=100, hi=1000)
    # a cursor carries its status filter: a page by cursor continues the listing it came from
    req = cursors.begin(request.query, ("recipients", app.id, camp["id"]),
                        {"status": request.query.get("status") or None}, secret, limit=limit)
    status = req.query.get("status")
    if status is not None and status not in ledger.STATUSES:
        raise bad_request(f"status must be one of {', '.join(ledger.STATUSES)}, got {str(status)[:40]!r}")
    fam = await family_views.family(request.app[POOL], app.id, camp)
    if fam is not None:  # a repeating campaign lists its occurrences' recipients too
        return ok(request, await series_api.family_recipients(request.app[POOL], app.id, camp, fam, req, status,
                                                                     secret))
    pos = cursors.typed_position(req, ["text"])
    key = pos[0] if pos is not None else None
    rows = await ledger.page(request.app[POOL], app.id, camp["id"], status, planned=bool(camp["planned"]),
                             after=None if req.backwards else key,
                             before=key if req.backwards else None, limit=limit + 1)
    if req.backwards:
        rows.reverse()  # nearest first, as the helper expects of a backwards page
    page, links = cursors.finish(req, rows, lambda r: [r["target_id"]], secret)
    out: dict[str, Any] = {"recipients": [ledger.row_view(r) for r in page], **links}
    return ok(request, out)


@routes.delete("/campaigns/{id}/recipients/{target_id}", name="DeleteCampaignRecipient")
async def delete_recipient(request: web.Request) -> web.Response:
    app = current_app(request)
    await use_cases.exclude(request.app[POOL], app.id, request.match_info["id"], request.match_info["target_id"])
    return ok(request, {})


@routes.get("/campaigns/{id}/stats", name="GetCampaignStats")
async def get_stats(request: web.Request) -> web.Response:
    app = current_app(request)
    r = await campaigns.get(request.app[POOL], app.id, request.match_info["id"])
    view = await campaign_out.view(request, r)
    fam = await family_views.family(request.app[POOL], app.id, r)
    timeline = await interactions.timeline(request.app[POOL], app.id, r["id"], analytics.granularity(request.query),
                                           fam)
    return ok(request, {"stats": view["stats"], "timeline": timeline, "status": r["status"]})


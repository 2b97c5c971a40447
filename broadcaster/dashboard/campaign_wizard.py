"""The create/edit wizard: audience → message (live preview for a chosen recipient through
the bounded renderer, variants, tracked links) → channel and sender → schedule, type and
policies → save, then the campaign's page is the review with Start."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import quote

from aiohttp import web

from broadcaster.dashboard import wizard_form
from broadcaster.dashboard.apicall import call
from broadcaster.dashboard.campaign_detail import page_url
from broadcaster.dashboard.render import error_page, field_errors, redirect, render
from broadcaster.dashboard.session import require_session
from broadcaster.errors import ApiError
from broadcaster.templating import TEST_SEND_SECONDS, RenderError, batch_budget, compile_campaign


async def _segments(request: web.Request) -> list[dict[str, Any]]:
    r = await call(request, "POST", "/segments/query", json={"limit": 100})
    return r.body.get("segments", []) if r.ok else []


def _form_page(request: web.Request, *, values: dict[str, Any], segments: list[dict[str, Any]],
               errors: dict[str, str] | None = None, campaign: dict[str, Any] | None = None,
               http_status: int = 200) -> web.Response:
    action = f"{page_url(campaign['id'])}/edit" if campaign else "/dashboard/campaigns/new"
    return render(request, "campaign_form.html", http_status=http_status, values=values,
                  errors=errors or {}, segments=segments, campaign=campaign, action_url=action,
                  types=wizard_form.TYPES, frequencies=wizard_form.FREQUENCIES,
                  quiet=wizard_form.QUIET, sender_modes=wizard_form.SENDER_MODES, winner_metrics=wizard_form.WINNER_METRICS,
                  variant_rows=range(1, wizard_form.MAX_VARIANTS + 1))


@require_session
async def new_form(request: web.Request) -> web.StreamResponse:
    return _form_page(request, segments=await _segments(request),
                      values={"type": "one_time", "audience": "segments", "channel_type": "messaging",
                              "create_channels": True, "quiet_hours": "defer", "frequency": "daily"})


async def _submit(request: web.Request, campaign: dict[str, Any] | None) -> web.StreamResponse:
    form = await request.post()
    values: dict[str, Any] = {k: form.get(k) for k in form}
    for k in ("track_clicks", "create_channels", "send_in_local_time", "ignore_frequency_caps"):
        values[k] = k in form
    segment_ids = [str(s) for s in form.getall("segment_ids", [])]
    values["segment_ids"] = segment_ids
    body, errors = wizard_form.to_body(form, segment_ids)
    if not errors:
        if campaign is None:
            cid = str(form.get("id") or "").strip()
            if cid:
                body["id"] = cid
            r = await call(request, "POST", "/campaigns", json=body)
        else:
            r = await call(request, "PUT", f"/campaigns/{quote(campaign['id'], safe='')}", json=body)
        if r.ok:
            c = r.body["campaign"]
            return redirect(request, page_url(c["id"]),
                            flash="Saved. Review it below, then start it." if c["status"] == "draft" else "Saved.")
        if r.status == 404:
            return error_page(request, 404, r.message)
        errors = field_errors(r, wizard_form.FIELDS)
        status = r.status if 400 <= r.status < 500 else 502
    else:
        status = 400
    return _form_page(request, values=values, segments=await _segments(request), errors=errors,
                      campaign=campaign, http_status=status)


@require_session
async def create(request: web.Request) -> web.StreamResponse:
    return await _submit(request, None)


async def _campaign(request: web.Request) -> tuple[dict[str, Any] | None, web.Response | None]:
    r = await call(request, "GET", f"/campaigns/{quote(request.match_info['id'], safe='')}",
                   params={"limit": "1"})
    if not r.ok:
        return None, error_page(request, r.status, r.message)
    return r.body["campaign"], None


@require_session
async def edit_form(request: web.Request) -> web.StreamResponse:
    c, err = await _campaign(request)
    if c is None:
        return err  # type: ignore[return-value]
    return _form_page(request, values=wizard_form.from_campaign(c), segments=await _segments(request),
                      campaign=c)


@require_session
async def update(request: web.Request) -> web.StreamResponse:
    c, err = await _campaign(request)
    if c is None:
        return err  # type: ignore[return-value]
    return await _submit(request, c)


def _render_preview(texts: list[tuple[str, str]], ctx: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    with batch_budget(TEST_SEND_SECONDS):
        for label, text in texts:
            out.append((label, compile_campaign({"text": text}, None).text.render(ctx)))
    return out


@require_session
async def preview(request: web.Request) -> web.StreamResponse:
    """{"text": the message as the chosen recipient gets it} or {"error": why not}. The text is
    rendered by the campaign renderer with its budgets, in a thread (compiling costs CPU)."""
    form = await request.post()
    uid = str(form.get("preview_user") or "").strip()
    sender = str(form.get("sender_id") or "").strip()
    if not uid:
        return web.json_response({"error": "Choose a recipient (a user id) to preview the message for."})
    want = [uid] + ([sender] if sender and sender != uid else [])
    r = await call(request, "GET", "/users", params={"payload": json.dumps(
        {"filter_conditions": {"id": {"$in": want}}, "limit": 2})})
    if not r.ok:
        return web.json_response({"error": r.message})
    users = {u["id"]: u for u in r.body.get("users", [])}
    if uid not in users:
        return web.json_response({"error": f"{uid!r} is not an existing user"})
    texts = [("", str(form.get("text") or ""))]
    for i in range(1, wizard_form.MAX_VARIANTS + 1):
        t = str(form.get(f"variant_{i}_text") or "")
        if t.strip():
            texts.append((str(form.get(f"variant_{i}_id") or f"variant {i}"), t))
    ctx = wizard_form.preview_context(users[uid], users.get(sender, {"id": sender}))
    try:
        out = await asyncio.to_thread(_render_preview, texts, ctx)
    except ApiError as e:  # a template syntax error: the API's own 400 message
        return web.json_response({"error": e.message})
    except RenderError as e:
        return web.json_response({"error": f"rendering failed for {uid}: {e}"})
    text = "\n\n".join(t if not label else f"— variant {label}:\n{t}" for label, t in out)
    return web.json_response({"text": text, "user": uid})


ROUTES = [
    ("GET", "/dashboard/campaigns/new", new_form, "CampaignNew"),
    ("POST", "/dashboard/campaigns/new", create, "CampaignCreate"),
    ("POST", "/dashboard/campaigns/preview", preview, "CampaignPreview"),
    ("GET", "/dashboard/campaigns/{id}/edit", edit_form, "CampaignEdit"),
    ("POST", "/dashboard/campaigns/{id}/edit", update, "CampaignUpdate"),
]

"""GET/PATCH /app: webhook, rate-limit and send-rate settings."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from broadcaster import appconfig
from broadcaster.errors import bad_request
from broadcaster.http import ok, read_json
from broadcaster.keys import POOL, SETTINGS
from broadcaster.middleware import current_app
from broadcaster.store import apps, webhook_secrets
from broadcaster.store import deliveries as whstore
from broadcaster.store import webhooks as whroute
from broadcaster.webhooks import egress, policy, resolve

routes = web.RouteTableDef()
DEFAULT_GRACE_S = 86_400
MAX_GRACE_S = 30 * 86_400


@routes.get("/app", name="GetApp")
async def get_app(request: web.Request) -> web.Response:
    row = current_app(request)
    fresh = await apps.by_id(request.app[POOL], row.id)
    assert fresh is not None
    return ok(request, {"app": appconfig.public_view(fresh.name, fresh.settings)})


def _urls(patch: dict[str, Any]) -> list[tuple[str, str]]:
    """(field path, url) of every receiver URL the patch sets."""
    out = [("webhook_url", patch["webhook_url"])] if patch.get("webhook_url") else []
    for i, h in enumerate(patch.get("event_hooks") or []):
        out.append((f"event_hooks[{i}].webhook_url", h["webhook_url"]))
    return out


@routes.patch("/app", name="UpdateApp")
async def update_app(request: web.Request) -> web.Response:
    row = current_app(request)
    cfg = request.app[SETTINGS]
    patch = appconfig.validate_patch(await read_json(request),
                                     appconfig.Ceilings(cfg.max_rate_limit_per_min, cfg.max_send_rate))
    allow = request.app[SETTINGS].webhook_allow_private
    for field, url in _urls(patch):
        try:
            await resolve.check_url(url, allow)
        except egress.EgressRefused as e:
            raise bad_request(f"{field} {url[:200]!r} is refused: {e}; webhooks go to public"
                              " addresses only (BROADCASTER_WEBHOOK_ALLOW_PRIVATE=1 allows others)") from None
    created: dict[str, str] = {}
    if patch:
        async with request.app[POOL].acquire() as conn, conn.transaction():
            if "webhook_url" in patch or "event_hooks" in patch:
                # routing waits: no event routed with the old URLs commits after this PATCH
                await whroute.order_lock(conn)
            old = await apps.settings_for_update(conn, row.id)
            new = await apps.update_settings(conn, row.id, patch)
            ended = policy.ended_receivers(old, new)
            moved = policy.moved_receivers(old, new)
            await whstore.lock_receivers(conn, row.id, [*ended, *moved])
            if ended:  # their retries must not go on to a URL the tenant took away
                await whstore.end_receivers(conn, row.id, ended)
                await webhook_secrets.forget(conn, row.id, [r for r, why in ended.items()
                                                            if why == "receiver removed"])
            if moved:  # their next attempts go to the new URL
                await whstore.repoint(conn, row.id, moved)
            created = await webhook_secrets.create_missing(conn, row.id, policy.configured(new))
    # a new receiver's Standard Webhooks signing secret, shown this once
    return ok(request, {"webhook_secrets": created} if created else None)


@routes.post("/app/secret/rotate", name="RotateAppSecret")
async def rotate_secret(request: web.Request) -> web.Response:
    """A new api_secret; the old one keeps verifying for grace_seconds (default 24 h)."""
    row = current_app(request)
    body = await read_json(request)
    grace = body.get("grace_seconds", DEFAULT_GRACE_S)
    if isinstance(grace, bool) or not isinstance(grace, int | float) or not 0 <= grace <= MAX_GRACE_S:
        raise bad_request(f"grace_seconds must be a number of seconds between 0 and {MAX_GRACE_S}")
    new = await apps.rotate_secret(request.app[POOL], row.id, float(grace))
    return ok(request, {"app": {"api_key": new.api_key, "api_secret": new.api_secret,
                                "previous_secret_expires_at": new.previous_secret_expires_at}})

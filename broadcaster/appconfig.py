"""App settings (pure): validation of PATCH /app and their public view for GET /app."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from broadcaster import analytics
from broadcaster.domain import policy
from broadcaster.errors import bad_request

EVENT_TYPES = (
    "campaign.started", "campaign.completed", "campaign.stopped", "campaign.paused",
    "campaign.resumed", "message.new", "channel.created",
)
OPERATION_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,63}$")


def _url(v: Any, name: str) -> str:
    if not isinstance(v, str):
        raise bad_request(f"{name} must be a string")
    if v == "":
        return v
    parts = urlsplit(v)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise bad_request(f"{name} must be an http or https URL, got {v[:200]!r}")
    if parts.username or parts.password:
        raise bad_request(f"{name} must not carry credentials")
    return v


def _events(v: Any, name: str) -> list[str]:
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise bad_request(f"{name} must be a list of event type strings")
    for i, x in enumerate(v):
        if x not in EVENT_TYPES:
            raise bad_request(f"{name}[{i}] {x!r} is not a known event type: {', '.join(EVENT_TYPES)}")
    return list(dict.fromkeys(v))


def _nonneg_number(v: Any, name: str) -> float | int:
    if isinstance(v, bool) or not isinstance(v, int | float) or v < 0:
        raise bad_request(f"{name} must be a number >= 0")
    return v


@dataclass(frozen=True)
class Ceilings:
    """What the operator lets tenants set (0 = no ceiling): BROADCASTER_MAX_RATE_LIMIT_PER_MIN,
    BROADCASTER_MAX_SEND_RATE. Under a ceiling, 0 (= unlimited) is refused too."""

    rate_limit_per_min: int = 0
    send_rate: float = 0.0


def _under(v: float, ceiling: float, name: str, env: str) -> None:
    if ceiling <= 0:
        return
    if v == 0:
        raise bad_request(f"{name}: 0 (unlimited) is not allowed, the operator's ceiling is {ceiling:g} ({env})")
    if v > ceiling:
        raise bad_request(f"{name} must be at most {ceiling:g}, the operator's ceiling ({env}), got {v:g}")


def capped(v: float, ceiling: float) -> float:
    """A stored or default value under the ceiling in force now (set before it, or a default)."""
    return v if ceiling <= 0 or 0 < v <= ceiling else ceiling


def validate_patch(body: dict[str, Any], ceilings: Ceilings = Ceilings()) -> dict[str, Any]:  # noqa: B008
    """The settings keys to merge; unknown top-level fields are ignored (spec section 1)."""
    out: dict[str, Any] = {}
    if body.get("webhook_url") is not None:
        out["webhook_url"] = _url(body["webhook_url"], "webhook_url")
    if body.get("webhook_events") is not None:
        out["webhook_events"] = _events(body["webhook_events"], "webhook_events")
    if body.get("webhook_rate_limit") is not None:
        out["webhook_rate_limit"] = _nonneg_number(body["webhook_rate_limit"], "webhook_rate_limit")
    if body.get("campaign_send_rate") is not None:
        out["campaign_send_rate"] = _nonneg_number(body["campaign_send_rate"], "campaign_send_rate")
        _under(out["campaign_send_rate"], ceilings.send_rate, "campaign_send_rate", "BROADCASTER_MAX_SEND_RATE")
    if body.get("attribution_window") is not None:
        analytics.window(body["attribution_window"])
        out["attribution_window"] = body["attribution_window"]
    if body.get("event_hooks") is not None:
        hooks = body["event_hooks"]
        if not isinstance(hooks, list):
            raise bad_request("event_hooks must be a list of objects")
        clean = []
        seen: set[str] = set()
        for i, h in enumerate(hooks):
            p = f"event_hooks[{i}]"
            if not isinstance(h, dict):
                raise bad_request(f"{p} must be an object")
            hid = h.get("id") or f"hook-{i + 1}"
            if not isinstance(hid, str) or not hid:
                raise bad_request(f"{p}.id must be a non-empty string")
            if hid in seen:
                raise bad_request(f"{p}.id {hid!r} is used twice")
            seen.add(hid)
            url = _url(h.get("webhook_url"), f"{p}.webhook_url")
            if not url:
                raise bad_request(f"{p}.webhook_url is required")
            types = _events(h.get("event_types") or [], f"{p}.event_types")
            enabled = h.get("enabled", True)
            if not isinstance(enabled, bool):
                raise bad_request(f"{p}.enabled must be a boolean")
            clean.append({"id": hid, "webhook_url": url, "event_types": types, "enabled": enabled})
        out["event_hooks"] = clean
    if body.get("rate_limits") is not None:
        rl = body["rate_limits"]
        if not isinstance(rl, dict):
            raise bad_request("rate_limits must be an object of operation name to requests per minute")
        clean_rl: dict[str, int] = {}
        for k, v in rl.items():
            if not OPERATION_RE.match(k):
                raise bad_request(f"rate_limits.{k[:64]} is not an operation name")
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise bad_request(f"rate_limits.{k} must be an integer >= 0 (requests per minute)")
            _under(v, ceilings.rate_limit_per_min, f"rate_limits.{k}", "BROADCASTER_MAX_RATE_LIMIT_PER_MIN")
            clean_rl[k] = v
        out["rate_limits"] = clean_rl
    out.update(policy.validate_settings(body))  # default_timezone, quiet_hours, frequency_caps (SPEC 5B)
    return out


def public_view(name: str, settings: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "webhook_url": settings.get("webhook_url", ""),
        "webhook_events": settings.get("webhook_events", []),
        "webhook_rate_limit": settings.get("webhook_rate_limit", 1000),
        "event_hooks": settings.get("event_hooks", []),
        "rate_limits": settings.get("rate_limits", {}),
        "campaign_send_rate": settings.get("campaign_send_rate", 0),
        "attribution_window": settings.get("attribution_window", analytics.DEFAULT_WINDOW),
        **policy.public_settings(settings),
    }

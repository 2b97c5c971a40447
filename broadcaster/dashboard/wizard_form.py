"""The create/edit wizard's form <-> the API's campaign body (pure: no aiohttp, no I/O).
The API validates the body; this only shapes it, so an error is the API's own message."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

MAX_VARIANTS = 4  # rows the form offers (the API takes 2..10)
TYPES = (("one_time", "One-time"), ("recurring", "Recurring"), ("triggered", "Triggered"))
FREQUENCIES = (("daily", "daily"), ("weekly", "weekly"), ("monthly", "monthly"))
QUIET = (("defer", "defer to the end of quiet hours"), ("skip", "skip the recipient"), ("ignore", "ignore quiet hours"))
WINNER_METRICS = (("", "no winner: send the variants to everyone"), ("read", "reads"), ("click", "clicks"),
                  ("conversion", "conversions"))
SENDER_MODES = (("", "default"), ("include", "include the sender"), ("exclude", "exclude the sender"))
_SPLIT = re.compile(r"[\s,;]+")

# The API's field names (as its error messages say them) -> the form field showing the error.
FIELDS = {
    "segment_ids": "segment_ids", "user_ids": "user_ids", "exactly one of segment_ids": "segment_ids",
    "message_template.text": "text", "message_template.variants": "variants",
    "message_template": "text", "sender_id": "sender_id", "sender_mode": "sender_mode",
    "channel_template.type": "channel_type", "channel_template.id": "channel_id",
    "channel_template": "channel_type", "create_channels": "create_channels", "name": "name",
    "id": "id", "schedule.frequency": "frequency", "schedule.time": "time",
    "schedule.timezone": "timezone", "schedule.day_of_week": "day_of_week",
    "schedule.day_of_month": "day_of_month", "schedule.max_runs": "max_runs",
    "schedule.ends_at": "ends_at", "schedule": "frequency", "trigger.event": "trigger_event",
    "trigger.filter": "trigger_filter", "trigger": "trigger_event", "delay": "delay",
    "type": "type", "quiet_hours": "quiet_hours", "send_in_local_time": "send_in_local_time",
    "track_clicks": "track_clicks", "winner.metric": "winner_metric",
    "winner.test_fraction": "winner_test_fraction", "winner.wait": "winner_wait", "winner": "winner_metric",
    "once_per_user": "once_per_user",
}


def ids(text: str) -> list[str]:
    return [x for x in _SPLIT.split(text or "") if x]


def _s(form: Mapping[str, Any], key: str) -> str:
    v = form.get(key)
    return str(v).strip() if v is not None else ""


def _on(form: Mapping[str, Any], key: str) -> bool:
    return _s(form, key) in ("1", "on", "true", "yes")


def to_body(form: Mapping[str, Any], segment_ids: list[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The API body of the form, and the errors of what cannot even be shaped (JSON, numbers)."""
    errors: dict[str, str] = {}
    kind = _s(form, "type") or "one_time"
    body: dict[str, Any] = {"name": _s(form, "name"), "type": kind,
                            "sender_id": _s(form, "sender_id") or None,
                            "track_clicks": _on(form, "track_clicks"),
                            "create_channels": _on(form, "create_channels")}
    if _s(form, "audience") == "users":
        body["user_ids"] = ids(_s(form, "user_ids"))
    elif segment_ids:
        body["segment_ids"] = segment_ids
    elif not (kind == "triggered" and _s(form, "audience") == "anyone"):
        body["segment_ids"] = []  # the API names what is missing
    if _s(form, "sender_mode"):
        body["sender_mode"] = _s(form, "sender_mode")
    mt: dict[str, Any] = {"text": str(form.get("text") or "")}
    variants = []
    for i in range(1, MAX_VARIANTS + 1):
        vid, vtext = _s(form, f"variant_{i}_id"), str(form.get(f"variant_{i}_text") or "")
        if vid or vtext.strip():
            v: dict[str, Any] = {"id": vid, "text": vtext}
            w = _s(form, f"variant_{i}_weight")
            if w:
                try:
                    v["weight"] = float(w)
                except ValueError:
                    errors["variants"] = f"variant {i}: weight must be a number"
            variants.append(v)
    if variants:
        mt["variants"] = variants
    if _s(form, "winner_metric"):
        winner: dict[str, Any] = {"metric": _s(form, "winner_metric"), "wait": _s(form, "winner_wait")}
        try:  # the form takes a percentage, the API a fraction
            winner["test_fraction"] = float(_s(form, "winner_test_fraction")) / 100
        except ValueError:
            errors["winner_test_fraction"] = "winner test share must be a number of percent"
        body["winner"] = winner
    body["message_template"] = mt
    ctype, cid = _s(form, "channel_type"), _s(form, "channel_id")
    if ctype or cid or body["create_channels"]:
        body["channel_template"] = {"type": ctype or "messaging", **({"id": cid} if cid else {})}
    if kind == "recurring":
        sched: dict[str, Any] = {"frequency": _s(form, "frequency"), "time": _s(form, "time"),
                                 "timezone": _s(form, "timezone") or "UTC"}
        for key in ("day_of_week", "day_of_month", "max_runs"):
            if _s(form, key):
                try:
                    sched[key] = int(_s(form, key))
                except ValueError:
                    errors[key] = f"schedule.{key} must be a whole number"
        if _s(form, "ends_at"):
            sched["ends_at"] = _s(form, "ends_at") + (":00Z" if len(_s(form, "ends_at")) == 16 else "")
        body["schedule"] = sched
    if kind == "triggered":
        trig: dict[str, Any] = {"event": _s(form, "trigger_event")}
        raw = _s(form, "trigger_filter")
        if raw:
            try:
                trig["filter"] = json.loads(raw)
            except ValueError as e:
                errors["trigger_filter"] = f"trigger.filter is not valid JSON: {e}"
        body["trigger"] = trig
        if _s(form, "delay"):
            body["delay"] = _s(form, "delay")
        body["once_per_user"] = not _on(form, "every_event")
    else:
        body["send_in_local_time"] = _on(form, "send_in_local_time") if kind == "one_time" else False
    body["quiet_hours"] = _s(form, "quiet_hours") or "defer"
    body["ignore_frequency_caps"] = _on(form, "ignore_frequency_caps")
    return body, errors


def from_campaign(c: Mapping[str, Any]) -> dict[str, Any]:
    """The form's values for editing a campaign (the API's campaign object)."""
    mt = c.get("message_template") or {}
    ct = c.get("channel_template") or {}
    sched = c.get("schedule") or {}
    trig = c.get("trigger") or {}
    out: dict[str, Any] = {
        "name": c.get("name") or "", "type": c.get("type") or "one_time",
        "audience": "users" if c.get("user_ids") else ("segments" if c.get("segment_ids") else "anyone"),
        "user_ids": "\n".join(c.get("user_ids") or []), "segment_ids": list(c.get("segment_ids") or []),
        "sender_id": c.get("sender_id") or "", "sender_mode": c.get("sender_mode") or "",
        "text": mt.get("text") or "", "track_clicks": bool(c.get("track_clicks")),
        "create_channels": bool(c.get("create_channels")), "channel_type": ct.get("type") or "",
        "channel_id": ct.get("id") or "", "frequency": sched.get("frequency") or "daily",
        "time": sched.get("time") or "", "timezone": sched.get("timezone") or "",
        "day_of_week": str(sched.get("day_of_week", "")), "day_of_month": str(sched.get("day_of_month", "")),
        "max_runs": str(sched.get("max_runs", "")), "ends_at": (sched.get("ends_at") or "")[:16],
        "trigger_event": trig.get("event") or "",
        "trigger_filter": json.dumps(trig["filter"]) if trig.get("filter") else "",
        "delay": c.get("delay") or "", "send_in_local_time": bool(c.get("send_in_local_time")),
        "quiet_hours": c.get("quiet_hours") or "defer",
        "ignore_frequency_caps": bool(c.get("ignore_frequency_caps")),
        "every_event": c.get("type") == "triggered" and c.get("once_per_user") is False,
    }
    winner = c.get("winner") or {}
    if winner.get("metric"):
        out.update(winner_metric=winner["metric"], winner_wait=winner.get("wait") or "",
                   winner_test_fraction=f"{float(winner.get('test_fraction') or 0) * 100:g}")
    for i, v in enumerate((mt.get("variants") or [])[:MAX_VARIANTS], start=1):
        out.update({f"variant_{i}_id": v.get("id") or "", f"variant_{i}_text": v.get("text") or "",
                    f"variant_{i}_weight": str(v.get("weight", ""))})
    return out


def preview_context(user: Mapping[str, Any], sender: Mapping[str, Any]) -> dict[str, Any]:
    """What a template sees for this recipient (as templating.user_view builds it from rows:
    the built-in fields and custom fields at the top level)."""
    def view(u: Mapping[str, Any]) -> dict[str, Any]:
        skip = {"created_at", "updated_at", "last_active", "online", "banned", "deleted_at",
                "deactivated_at", "devices", "channel_mutes", "mutes"}
        out = {k: v for k, v in u.items() if k not in skip}
        out.update(id=u.get("id"), name=u.get("name") or "", role=u.get("role"),
                   teams=list(u.get("teams") or []), language=u.get("language") or "")
        return out

    r = view(user)
    return {"sender": view(sender), "receiver": r, "user": r, "unsubscribe_url": "#unsubscribe"}

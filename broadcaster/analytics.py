"""The funnel's pure parts (SPEC 5C): conversion input, the attribution window, rates."""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from broadcaster import timefmt
from broadcaster.errors import bad_request
from broadcaster.validate import ident, no_nul

MAX_CONVERSIONS = 1000
DEFAULT_WINDOW = "7d"
_DURATION_RE = re.compile(r"\A([1-9][0-9]{0,6})([smhd])\Z")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_WINDOW = timedelta(days=366)
CURRENCY_RE = re.compile(r"\A[A-Za-z]{3}\Z")


@dataclass(frozen=True)
class Conversion:
    id: str
    user_id: str
    event: str
    value: Decimal | None
    currency: str | None
    created_at: datetime


def window(value: Any, field: str = "attribution_window") -> timedelta:
    """"<n>s|m|h|d", at most a year."""
    if not isinstance(value, str) or not _DURATION_RE.match(value):
        raise bad_request(f"{field} must be a duration like \"7d\", \"12h\", \"30m\" or \"90s\", got {str(value)[:40]!r}")
    m = _DURATION_RE.match(value)
    assert m is not None
    td = timedelta(seconds=int(m.group(1)) * _UNIT_S[m.group(2)])
    if td > MAX_WINDOW:
        raise bad_request(f"{field} must be at most 366d, got {value!r}")
    return td


def app_window(settings: dict[str, Any]) -> timedelta:
    return window(settings.get("attribution_window") or DEFAULT_WINDOW)


def _one(i: int, c: Any, now: datetime) -> Conversion:
    p = f"conversions[{i}]"
    if not isinstance(c, dict):
        raise bad_request(f"{p} must be an object")
    cid = c.get("id")
    cid = ident(cid, f"{p}.id") if cid is not None else uuid.uuid4().hex
    uid = ident(c.get("user_id"), f"{p}.user_id") if c.get("user_id") is not None else None
    if uid is None:
        raise bad_request(f"{p}.user_id is required")
    event = c.get("event")
    if not isinstance(event, str) or not 1 <= len(event) <= 255:
        raise bad_request(f"{p}.event is required: a string of 1-255 characters")
    # the one free-text field stored (ids and currency are patterns without NUL, created_at
    # a parsed time, other keys are not stored)
    no_nul(event, f"{p}.event")
    value: Decimal | None = None
    if c.get("value") is not None:
        v = c["value"]
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or abs(v) >= 1e15:
            raise bad_request(f"{p}.value must be a finite number below 1e15 in magnitude")
        value = Decimal(str(v))
    currency = c.get("currency")
    if currency is not None:
        if not isinstance(currency, str) or not CURRENCY_RE.match(currency):
            raise bad_request(f"{p}.currency must be a 3-letter ISO 4217 code such as \"EUR\"")
        currency = currency.upper()
    if value is not None and currency is None:
        raise bad_request(f"{p}.currency is required with value (revenue is summed per currency)")
    at = timefmt.parse(c["created_at"], f"{p}.created_at") if c.get("created_at") is not None else now
    return Conversion(cid, uid, event, value, currency, at)


def conversions(body: dict[str, Any], now: datetime) -> list[Conversion]:
    """All-or-nothing: one invalid item refuses the call, naming it. Repeated ids within the
    call are kept (the store reports the later ones as duplicates)."""
    items = body.get("conversions")
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_CONVERSIONS:
        raise bad_request(f"conversions must be a list of 1 to {MAX_CONVERSIONS} objects")
    return [_one(i, c, now) for i, c in enumerate(items)]


GRANULARITIES = ("minute", "hour", "day")
INTERACTION_TYPES = ("sent", "read", "clicked", "converted")


def granularity(query: Mapping[str, str]) -> str:
    g = query.get("granularity") or "minute"
    if g not in GRANULARITIES:
        raise bad_request(f"granularity must be one of {', '.join(GRANULARITIES)}, got {g[:40]!r}")
    return g


def interaction_type(value: Any) -> str:
    if value not in INTERACTION_TYPES:
        raise bad_request(f"type must be one of {', '.join(INTERACTION_TYPES)}, got {str(value)[:40]!r}")
    return str(value)


def rate(part: int, whole: int) -> float:
    return part / whole if whole > 0 else 0.0


def funnel_stats(s: dict[str, Any], users_sent: int) -> dict[str, Any]:
    """The funnel's part of campaign stats from ledger.stats_many's sums (SPEC 5C rates)."""
    read, clicked, converted = (int(s.get(k, 0)) for k in ("read", "users_clicked", "users_converted"))
    return {
        "stats_users_clicked": clicked,
        "stats_clicks": int(s.get("clicks", 0)),
        "stats_users_converted": converted,
        "stats_conversions": int(s.get("conversions", 0)),
        "stats_revenue": dict(s.get("revenue") or {}),
        "read_rate": rate(read, users_sent),
        "click_rate": rate(clicked, users_sent),
        "conversion_rate": rate(converted, users_sent),
        **({"variants": s["variants"]} if s.get("variants") is not None else {}),
    }

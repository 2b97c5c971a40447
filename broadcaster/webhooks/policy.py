"""Pure delivery rules: who receives an event, when to retry, what waits for what."""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal

DEFAULT_RATE = 1000  # requests/s per receiver (SPEC 7)
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 600.0  # a receiver back after an outage is retried within ~10 min at worst
RETRY_AFTER_CAP_S = 3600.0
MAIN_RECEIVER = "webhook_url"


def receivers(settings: dict[str, Any], event_type: str) -> list[tuple[str, str]]:
    """(receiver id, url) pairs an event goes to; an empty event list means every event."""
    out: list[tuple[str, str]] = []
    url = settings.get("webhook_url") or ""
    events = settings.get("webhook_events") or []
    if url and (not events or event_type in events):
        out.append((MAIN_RECEIVER, url))
    for hook in settings.get("event_hooks") or []:
        if not isinstance(hook, dict) or not hook.get("enabled", True) or not hook.get("webhook_url"):
            continue
        types = hook.get("event_types") or []
        if not types or event_type in types:
            out.append((f"hook:{hook.get('id')}", hook["webhook_url"]))
    return out


def receiver_url(settings: dict[str, Any], receiver: str) -> str | None:
    """The current URL of a receiver id, None when it is gone or switched off."""
    if receiver == MAIN_RECEIVER:
        return settings.get("webhook_url") or None
    for hook in settings.get("event_hooks") or []:
        if isinstance(hook, dict) and f"hook:{hook.get('id')}" == receiver and hook.get("enabled", True):
            return hook.get("webhook_url") or None
    return None


def configured(settings: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    """Every receiver id the settings name: (url, enabled)."""
    out: dict[str, tuple[str, bool]] = {}
    if settings.get("webhook_url"):
        out[MAIN_RECEIVER] = (settings["webhook_url"], True)
    for hook in settings.get("event_hooks") or []:
        if isinstance(hook, dict) and hook.get("webhook_url"):
            out[f"hook:{hook.get('id')}"] = (hook["webhook_url"], bool(hook.get("enabled", True)))
    return out


def ended_receivers(old: dict[str, Any], new: dict[str, Any]) -> dict[str, str]:
    """Receivers a settings change removed or switched off: receiver id -> why, the reason
    their pending deliveries end with."""
    before, after = configured(old), configured(new)
    out: dict[str, str] = {}
    for rid, (_, enabled) in before.items():
        if rid not in after:
            out[rid] = "receiver removed"
        elif enabled and not after[rid][1]:
            out[rid] = "receiver disabled"
    return out


def moved_receivers(old: dict[str, Any], new: dict[str, Any]) -> dict[str, str]:
    """Receivers a settings change kept but gave another URL: receiver id -> the new URL,
    which their pending deliveries are sent to from then on."""
    before, after = configured(old), configured(new)
    return {rid: url for rid, (url, _) in after.items() if rid in before and before[rid][0] != url}


def active_receivers(settings: dict[str, Any]) -> dict[str, str]:
    """Receiver id -> URL of those that exist and are enabled (the only ones replay sends to)."""
    return {rid: url for rid, (url, enabled) in configured(settings).items() if enabled}


def rate_of(settings: dict[str, Any]) -> float:
    """Requests/s per receiver; 0 = unlimited."""
    v = settings.get("webhook_rate_limit", DEFAULT_RATE)
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else float(DEFAULT_RATE)


def is_barrier(event_type: str) -> bool:
    return event_type.startswith("campaign.")


def holds(
    events: Sequence[tuple[Hashable | None, bool]], pending: dict[Hashable, tuple[bool, bool]],
) -> list[bool]:
    """Whether each new delivery must wait, walking them in event order.

    events: (ordering key or None, is a campaign.* event) in outbox order; pending: for keys
    that already have undelivered rows, (any pending, a campaign.* one pending). A message
    event waits for earlier campaign.* events of its key; a campaign.* event waits for every
    earlier event of its key.
    """
    state = {k: [a, b] for k, (a, b) in pending.items()}
    out: list[bool] = []
    for key, barrier in events:
        if key is None:
            out.append(False)
            continue
        s = state.setdefault(key, [False, False])
        out.append(s[0] if barrier else s[1])
        s[0] = True
        if barrier:
            s[1] = True
    return out


@dataclass(frozen=True)
class Decision:
    outcome: Literal["delivered", "retry", "failed"]
    delay: float = 0.0


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After as seconds (delta-seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def retryable(status: int | None) -> bool:
    return status is None or status in (408, 429) or status >= 500


def decide(
    status: int | None, attempt: int, *, retry_after: str | None, series_age_s: float,
    window_s: float, jitter: float,
) -> Decision:
    """What to do after attempt number `attempt` (1-based) answered `status` (None = network
    error or timeout). jitter in [0, 1) spreads retries of a burst of failures."""
    if status is not None and 200 <= status < 300:
        return Decision("delivered")
    if not retryable(status):
        return Decision("failed")
    ra = parse_retry_after(retry_after) if status in (429, 503) else None
    if ra is not None:
        delay = min(ra, RETRY_AFTER_CAP_S)
    else:
        base = min(BACKOFF_CAP_S, BACKOFF_BASE_S * math.pow(2, min(attempt - 1, 30)))
        delay = base * (0.5 + jitter / 2)
    if series_age_s + delay > window_s:
        return Decision("failed")
    return Decision("retry", delay)

"""RFC 3339 timestamps: output always UTC with a Z suffix, input any offset."""

from __future__ import annotations

from datetime import UTC, datetime

from broadcaster.errors import bad_request


def fmt(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse(value: object, field: str) -> datetime:
    """Parse an RFC 3339 string; naive times are taken as UTC (the Python SDK sends them)."""
    if not isinstance(value, str):
        raise bad_request(f"{field} must be an RFC 3339 timestamp string")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise bad_request(f"{field} is not a valid RFC 3339 timestamp: {value!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    try:
        return dt.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+05:00 is before year 1 in UTC
        raise bad_request(f"{field} is out of the supported range (years 1-9999 in UTC): {value!r}") from None


def now() -> datetime:
    return datetime.now(UTC)

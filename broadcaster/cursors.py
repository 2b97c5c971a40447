"""Opaque keyset cursors (pure): a position plus a fingerprint of the query, HMAC-signed.

A cursor is bound to the query it came from: used with another filter, sort, resource or
app, or tampered with, it is a 400.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import orjson

from broadcaster.errors import bad_request


def fingerprint(*parts: Any) -> str:
    raw = orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(raw).hexdigest()[:16]


def encode(position: list[Any], direction: str, query_fp: str, secret: str) -> str:
    """direction: "next" or "prev" (which way the page that follows goes)."""
    payload = orjson.dumps({"p": position, "d": direction, "q": query_fp})
    mac = hmac.new(secret.encode(), payload, hashlib.sha256).digest()[:12]
    return base64.urlsafe_b64encode(mac + payload).decode().rstrip("=")


def decode(cursor: Any, field: str, expected_direction: str, query_fp: str, secret: str) -> list[Any]:
    if not isinstance(cursor, str) or not cursor or len(cursor) > 4096:
        raise bad_request(f"{field} must be a cursor string returned by a previous page")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (ValueError, TypeError):
        raise bad_request(f"{field} is not a valid cursor") from None
    mac, payload = raw[:12], raw[12:]
    good = hmac.new(secret.encode(), payload, hashlib.sha256).digest()[:12]
    if len(mac) != 12 or not hmac.compare_digest(mac, good):
        raise bad_request(f"{field} is not a valid cursor (forged or from another server)")
    data = orjson.loads(payload)
    if data.get("q") != query_fp:
        raise bad_request(f"{field} cursor belongs to a different query (filter, sort or resource changed)")
    if data.get("d") != expected_direction:
        raise bad_request(f"{field} cursor was issued for {data.get('d')!r} paging, not {expected_direction!r}")
    pos = data.get("p")
    if not isinstance(pos, list):
        raise bad_request(f"{field} is not a valid cursor")
    return pos

"""Opt-out links (SPEC 5B), pure: `{{ unsubscribe_url }}` in a campaign template becomes each
recipient's signed link to `GET /u/{token}`.

Templates render the variable as MARK (one compiled render for every recipient), and fill()
replaces it per row with the recipient's link afterwards, so the per-recipient cost is one
HMAC and a string replace, and only for templates that use it. A token names the app and the
user and is HMAC-signed with the server's link key (its own domain, so a click token never
opens here); a forged, altered or truncated one opens nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from typing import Any

import orjson

MARK = "\u2063bc:unsubscribe_url\u2063"  # invisible separators: never typed by a person
MAC_BYTES = 16


def _mac(secret: str, payload: bytes) -> bytes:
    return hmac.new(secret.encode(), b"unsubscribe:" + payload, hashlib.sha256).digest()[:MAC_BYTES]


def token(secret: str, app_id: int, user_id: str) -> str:
    payload = orjson.dumps([app_id, user_id])
    return base64.urlsafe_b64encode(_mac(secret, payload) + payload).decode().rstrip("=")


def open_token(secret: str, tok: str) -> tuple[int, str] | None:
    if not tok or len(tok) > 1024 or not re.fullmatch(r"[A-Za-z0-9_-]+", tok):
        return None
    try:
        raw = base64.urlsafe_b64decode(tok + "=" * (-len(tok) % 4))
        mac, payload = raw[:MAC_BYTES], raw[MAC_BYTES:]
        if len(mac) != MAC_BYTES or not hmac.compare_digest(mac, _mac(secret, payload)):
            return None
        app_id, user_id = orjson.loads(payload)
    except (ValueError, TypeError, orjson.JSONDecodeError):
        return None
    if not isinstance(app_id, int) or not isinstance(user_id, str):
        return None
    return app_id, user_id


def url(base: str, secret: str, app_id: int, user_id: str) -> str:
    return f"{base.rstrip('/')}/u/{token(secret, app_id, user_id)}"


def fill(rows: list[Any] | None, users: list[str], base: str, secret: str, app_id: int) -> list[Any] | None:
    """rows (texts, or custom data) with MARK replaced by each row's user link."""
    if rows is None:
        return rows
    out: list[Any] = []
    for r, u in zip(rows, users, strict=True):
        if isinstance(r, str):
            out.append(r.replace(MARK, url(base, secret, app_id, u)) if MARK in r else r)
            continue
        raw = orjson.dumps(r).decode()
        out.append(orjson.loads(raw.replace(MARK, url(base, secret, app_id, u))) if MARK in raw else r)
    return out

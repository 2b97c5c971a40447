"""Signed webhooks: what a receiver needs to check a request came from broadcaster.

Every request carries `X-Signature`: the hex HMAC-SHA256 of the exact request body bytes,
keyed with the app's API secret (the same scheme as the hosted API, so the `stream-chat`
SDK's `verify_webhook` works too).
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["sign", "verify"]


def sign(body: bytes, secret: str) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(body: bytes, signature: str | bytes, secret: str) -> bool:
    """True when `signature` (the X-Signature header) matches `body` (the raw request bytes)."""
    if isinstance(signature, bytes):
        signature = signature.decode("ascii", "replace")
    return hmac.compare_digest(sign(body, secret), signature.strip().lower())

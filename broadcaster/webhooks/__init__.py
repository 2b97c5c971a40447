"""Signed webhooks: what a receiver needs to check a request came from broadcaster.

Every request carries two signatures:
- `X-Signature`: the hex HMAC-SHA256 of the exact request body bytes, keyed with the app's
  API secret (the hosted API's scheme: the `stream-chat` SDK's `verify_webhook` checks it);
- Standard Webhooks (standardwebhooks.com): `webhook-id`, `webhook-timestamp` (unix seconds)
  and `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">` keyed with the
  receiver's own `whsec_...` secret (during a rotation's overlap, `v1,<new> v1,<old>`), so a
  receiver needs no API secret and can refuse replays by their timestamp.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping

__all__ = ["sign", "verify", "sign_standard", "verify_standard", "TOLERANCE_S"]

TOLERANCE_S = 300  # the Standard Webhooks default: older or newer requests are refused


def sign(body: bytes, secret: str) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(body: bytes, signature: str | bytes, secret: str) -> bool:
    """True when `signature` (the X-Signature header) matches `body` (the raw request bytes)."""
    if isinstance(signature, bytes):
        signature = signature.decode("ascii", "replace")
    return hmac.compare_digest(sign(body, secret), signature.strip().lower())


def secret_bytes(whsec: str) -> bytes:
    """The key a `whsec_<base64>` secret stands for."""
    raw = whsec[len("whsec_"):] if whsec.startswith("whsec_") else whsec
    return base64.b64decode(raw + "=" * (-len(raw) % 4))


def sign_standard(msg_id: str, timestamp: int, body: bytes, whsec: str) -> str:
    """One `v1,<base64>` signature of the Standard Webhooks scheme."""
    mac = hmac.new(secret_bytes(whsec), b"%s.%d." % (msg_id.encode(), timestamp) + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def verify_standard(body: bytes, headers: Mapping[str, str], whsec: str, *,
                    tolerance_s: float = TOLERANCE_S, now: float | None = None) -> bool:
    """True when one of the request's webhook-signature values matches `body` under `whsec`
    and webhook-timestamp is within tolerance_s of now (a replayed old request fails)."""
    h = {k.lower(): v for k, v in headers.items()}
    msg_id, ts, sigs = h.get("webhook-id"), h.get("webhook-timestamp"), h.get("webhook-signature")
    if not (msg_id and ts and sigs) or not ts.isdigit():
        return False
    if abs((time.time() if now is None else now) - int(ts)) > tolerance_s:
        return False
    try:
        expected = sign_standard(msg_id, int(ts), body, whsec)
    except (binascii.Error, ValueError):
        return False
    return any(hmac.compare_digest(expected, s) for s in sigs.split(" ") if s.startswith("v1,"))

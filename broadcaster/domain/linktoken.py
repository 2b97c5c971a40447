"""Tracked-link tokens (SPEC 5C), pure: compact and keyed.

v2 (written now): base64url(mac || payload), payload = version byte (bit 7: a test send;
bits 4-5: an https:// or http:// prefix cut off the URL), app id (4 bytes), campaign and target (1-byte lengths), link number (1 byte), the URL. The
MAC is a keyed BLAKE2b of 12 bytes over the payload: one C call per link where v1 spent a
JSON encoding and an HMAC-SHA256 (a third of a tracked batch's rendering), and the token is
about a third shorter, which the messages table and its WAL carry per link. The per-campaign
part of the payload is hashed once per batch (a copy of the keyed state per link).

v1 (messages already delivered carry it; still opened): HMAC-SHA256 truncated to 16 bytes
over a JSON array [app, campaign, target, link_no, url, test].
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
from typing import Any

import orjson

V1_MAC = 16
V2_MAC = 12
V2 = 2
TEST_BIT = 0x80
# the URL's scheme as a bit of the version byte instead of 7-8 bytes of every token
SCHEMES = ((0x10, "https://"), (0x20, "http://"))
_SCHEME_BITS = 0x30
Opened = tuple[int, str, str, int, str, bool]  # app, campaign, target, link_no, url, test


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _key(secret: str) -> bytes:
    # BLAKE2b takes keys of up to 64 bytes: a longer secret is hashed into one
    raw = secret.encode()
    return raw if len(raw) <= 64 else hashlib.sha256(raw).digest()


def _v2_base(secret: str) -> Any:
    return hashlib.blake2b(key=_key(secret), digest_size=V2_MAC, person=b"click:v2")


_BASES: dict[str, Any] = {}


def _base(secret: str) -> Any:
    h = _BASES.get(secret)
    if h is None:
        h = _BASES[secret] = _v2_base(secret)
        if len(_BASES) > 16:  # a handful of keys per process at most (rotation)
            _BASES.pop(next(iter(_BASES)))
    return h


def _v1(secret: str, app_id: int, camp: str, target: str, no: int, url: str, test: bool) -> str:
    payload = orjson.dumps([app_id, camp, target, no, url, int(test)])
    mac = hmac.new(secret.encode(), b"click:" + payload, hashlib.sha256).digest()[:V1_MAC]
    return _b64(mac + payload)


def read_names(payload: bytes) -> tuple[int, str, str, int] | None:
    """App id, campaign and target of a v2/v3 payload (after its version byte), and where
    the rest starts; None when it does not hold them."""
    try:
        app_id, lc = struct.unpack_from(">IB", payload, 1)
        pos = 6
        camp = payload[pos:pos + lc].decode()
        pos += lc
        lt = payload[pos]
        target = payload[pos + 1:pos + 1 + lt].decode()
        pos += 1 + lt
    except (IndexError, UnicodeDecodeError, struct.error):
        return None
    if len(camp.encode()) != lc or len(target.encode()) != lt:
        return None
    return app_id, camp, target, pos


def _open_v2(secret: str, raw: bytes) -> Opened | None:
    mac, payload = raw[:V2_MAC], raw[V2_MAC:]
    if len(payload) < 8 or payload[0] & ~(TEST_BIT | _SCHEME_BITS) != V2:
        return None
    h = _base(secret).copy()
    h.update(payload)
    if not hmac.compare_digest(mac, h.digest()):
        return None
    names = read_names(payload)
    if names is None:
        return None
    app_id, camp, target, pos = names
    try:
        no = payload[pos]
        url = payload[pos + 1:].decode()
    except (IndexError, UnicodeDecodeError):
        return None
    scheme = payload[0] & _SCHEME_BITS
    if scheme:
        prefix = dict(SCHEMES).get(scheme)
        if prefix is None:
            return None
        url = prefix + url
    return app_id, camp, target, no, url, bool(payload[0] & TEST_BIT)


def _open_v1(secret: str, raw: bytes) -> Opened | None:
    mac, payload = raw[:V1_MAC], raw[V1_MAC:]
    want = hmac.new(secret.encode(), b"click:" + payload, hashlib.sha256).digest()[:V1_MAC]
    if len(mac) != V1_MAC or not hmac.compare_digest(mac, want):
        return None
    try:
        app_id, camp, target, no, url, test = orjson.loads(payload)
    except (orjson.JSONDecodeError, ValueError, TypeError):
        return None
    if not (isinstance(app_id, int) and isinstance(camp, str) and isinstance(target, str)
            and isinstance(no, int) and isinstance(url, str)):
        return None
    return app_id, camp, target, no, url, bool(test)


def open_raw(secret: str, raw: bytes) -> Opened | None:
    """What a token's bytes name, if we signed them (v2 or v1), else None."""
    return _open_v2(secret, raw) or _open_v1(secret, raw)

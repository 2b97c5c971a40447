"""App secrets at rest (pure): AES-256-GCM under BROADCASTER_SECRET_KEY when it is set.

A sealed value reads `enc1:<base64url(nonce | ciphertext+tag)>`; anything else is a plain
value from before a key was set, and keeps working (it is sealed on the next startup or
rotation). `cryptography` is imported only when a key is in use.
"""

from __future__ import annotations

import base64
import hashlib
import os
from typing import Any

PREFIX = "enc1:"
_AAD = b"broadcaster app secret v1"


class SecretKeyMissing(Exception):
    """A sealed value was read but no BROADCASTER_SECRET_KEY is configured (or it is another)."""


class _Key:
    value: str | None = None


def configure(key: str) -> None:
    """The process's key (from Settings); unset, BROADCASTER_SECRET_KEY is read."""
    _Key.value = key


def key() -> str:
    return _Key.value if _Key.value is not None else os.environ.get("BROADCASTER_SECRET_KEY", "")


def _aead(k: str) -> Any:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    # Any string works as the key; a SHA-256 of it gives AES-256 its 32 bytes.
    return AESGCM(hashlib.sha256(k.encode()).digest())


def is_sealed(stored: str) -> bool:
    return stored.startswith(PREFIX)


def seal(plain: str, k: str | None = None) -> str:
    k = key() if k is None else k
    if not k:
        return plain
    nonce = os.urandom(12)
    ct = _aead(k).encrypt(nonce, plain.encode(), _AAD)
    return PREFIX + base64.urlsafe_b64encode(nonce + ct).decode()


def reveal(stored: str, k: str | None = None) -> str:
    if not is_sealed(stored):
        return stored
    k = key() if k is None else k
    if not k:
        raise SecretKeyMissing("an app secret is encrypted but BROADCASTER_SECRET_KEY is not set")
    from cryptography.exceptions import InvalidTag

    raw = base64.urlsafe_b64decode(stored[len(PREFIX):])
    try:
        return str(_aead(k).decrypt(raw[:12], raw[12:], _AAD).decode())
    except InvalidTag:
        raise SecretKeyMissing("an app secret does not decrypt with BROADCASTER_SECRET_KEY") from None


def generate_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")

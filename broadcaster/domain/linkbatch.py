"""Tracked links of a whole rendered batch (SPEC 5C), pure: the per-recipient cost cut to one
keyed hash and one base64 per link.

v3 tokens, for the links written literally in the campaign's message template (the same for
every recipient): payload = version byte 3 (bit 7: a test send), app id (4 bytes), campaign
and target (1-byte lengths), link number, the link's index in `literals(template)` and 2
bytes of a hash of its URL; the MAC (keyed BLAKE2b, 12 bytes) covers the payload. The URL is
not in the token: the redirect finds it in the campaign's template (immutable once the
campaign starts). So a forged or altered token is refused before anything is read from the
database (the MAC), and one whose campaign's template no longer has that URL at that index
(a campaign deleted and made again under its id) is refused too (the URL hash). Links that
differ per recipient (templated) keep v2 tokens, which carry their URL (domain/linktoken).

Per batch, each distinct (link number, URL) is prepared once: the keyed state fed the
campaign's part, the bytes after the recipient's; per recipient only the target's bytes are
added.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import re
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from broadcaster.domain import linktoken

V3 = 3
MAX_LITERALS = 256  # the index is one byte
# A link runs to whitespace or a character that cannot appear unescaped in one.
_STOPS = r"\s<>\"'`"
LINK_RE = re.compile(rf"https?://[^{_STOPS}]+", re.IGNORECASE)
LINK_STOP_RE = re.compile(rf"[{_STOPS}]")
_TEMPLATE_CHARS = frozenset("{}%")
B64_TABLE = bytes.maketrans(b"+/", b"-_")


def _strings(x: Any) -> Iterator[str]:
    if isinstance(x, str):
        yield x
    elif isinstance(x, dict):
        for v in x.values():
            yield from _strings(v)
    elif isinstance(x, list):
        for v in x:
            yield from _strings(v)


def literals(message_template: Any, trim: Callable[[str], str]) -> tuple[str, ...]:
    """The links written literally (no template syntax in or next to them) anywhere in a
    message template, its variants included, sorted: the same list in the worker that signs
    and the API that opens, from the same stored template."""
    found: set[str] = set()
    for s in _strings(message_template):
        for m in LINK_RE.finditer(s):
            link = trim(m.group(0))
            if link and not _TEMPLATE_CHARS.intersection(link) and LINK_RE.fullmatch(link):
                found.add(link)
    return tuple(sorted(found))[:MAX_LITERALS]


def _v3_base(secret: str) -> Any:
    return hashlib.blake2b(key=linktoken._key(secret), digest_size=linktoken.V2_MAC, person=b"click:v3")


_BASES: dict[str, Any] = {}


def _base(secret: str) -> Any:
    h = _BASES.get(secret)
    if h is None:
        h = _BASES[secret] = _v3_base(secret)
        if len(_BASES) > 16:
            _BASES.pop(next(iter(_BASES)))
    return h


def url_hash(url: str) -> bytes:
    return hashlib.blake2b(url.encode(), digest_size=2, person=b"click:url").digest()


def b64(raw: bytes) -> str:
    return binascii.b2a_base64(raw, newline=False).translate(B64_TABLE).decode().rstrip("=")


class BatchSigner:
    """sign(target_bytes, target, link_no, url) -> token for one campaign's batch."""

    def __init__(self, secret: str, app_id: int, campaign_id: str, lits: Sequence[str], *, test: bool) -> None:
        self.secret, self.app_id, self.campaign_id, self.test = secret, app_id, campaign_id, test
        camp = campaign_id.encode()
        self.ok = len(camp) <= 255 and 0 <= app_id < 2**32
        tail = struct.pack(">IB", app_id, len(camp)) + camp if self.ok else b""
        test_bit = linktoken.TEST_BIT if test else 0
        self.heads: dict[int, bytes] = {bit: bytes((linktoken.V2 | test_bit | bit,)) + tail
                                        for bit in (0, *(b for b, _ in linktoken.SCHEMES))}
        self.head3 = bytes((V3 | test_bit,)) + tail
        self.v2 = linktoken._base(secret)
        self.v3 = _base(secret).copy()
        self.v3.update(self.head3)
        self.index = {u: i for i, u in enumerate(lits)}
        self._keyed2: dict[int, Any] = {}
        # (link_no, url) -> (keyed state, token bytes after the target, MAC bytes after it, head)
        self._links: dict[tuple[int, str], tuple[Any, bytes | None, bytes, bytes]] = {}

    def target(self, target: str) -> bytes | None:
        t = target.encode()
        return bytes((len(t),)) + t if len(t) <= 255 and self.ok else None

    def prepare(self, no: int, url: str) -> tuple[Any, bytes | None, bytes, bytes]:
        """(keyed state, token bytes after the target, MAC bytes after it, head); the token
        bytes are None where only a v1 token fits (sign() makes it)."""
        if not 0 <= no < 256 or not self.ok:
            return None, None, b"", b""
        idx = self.index.get(url)
        if idx is not None:
            mid = bytes((no, idx)) + url_hash(url)
            return self.v3, mid, mid, self.head3
        bit, cut = scheme(url)
        after = bytes((no,)) + url[cut:].encode()
        return self.keyed2(bit), after, after, self.heads[bit]

    def keyed2(self, bit: int) -> Any:
        """The v2 MAC state fed the head of a URL scheme's tokens (once per batch)."""
        keyed = self._keyed2.get(bit)
        if keyed is None:
            keyed = self._keyed2[bit] = self.v2.copy()
            keyed.update(self.heads[bit])
        return keyed

    def sign(self, tb: bytes | None, target: str, no: int, url: str) -> str:
        k = (no, url)
        p = self._links.get(k)
        if p is None:
            p = self._links[k] = self.prepare(no, url)
        keyed, mid, after, head = p
        if tb is None or mid is None:
            return linktoken._v1(self.secret, self.app_id, self.campaign_id, target, no, url, self.test)
        h = keyed.copy()
        h.update(tb)
        h.update(after)
        return b64(h.digest() + head + tb + mid)


def scheme(url: str) -> tuple[int, int]:
    """The version byte's bit of a URL's scheme, and how many characters of it that bit stands for."""
    for b, prefix in linktoken.SCHEMES:
        if url.startswith(prefix):
            return b, len(prefix)
    return 0, 0


@dataclass(frozen=True)
class Ref:
    """A v3 token taken apart, before its URL is known: the campaign's template has it."""

    app_id: int
    campaign_id: str
    target_id: str
    link_no: int
    index: int
    test: bool
    url_hash: bytes


def parse(secret: str, raw: bytes) -> Ref | None:
    """A v3 token we signed, taken apart (None for anything else)."""
    mac, payload = raw[:linktoken.V2_MAC], raw[linktoken.V2_MAC:]
    if len(payload) < 11 or payload[0] & ~linktoken.TEST_BIT != V3:
        return None
    h = _base(secret).copy()
    h.update(payload)
    if not hmac.compare_digest(mac, h.digest()):
        return None
    names = linktoken.read_names(payload)
    if names is None or len(payload) != names[3] + 4:
        return None
    app_id, camp, target, pos = names
    return Ref(app_id, camp, target, payload[pos], payload[pos + 1], bool(payload[0] & linktoken.TEST_BIT),
               payload[pos + 2:])


def url_of(ref: Ref, lits: Sequence[str]) -> str | None:
    """The URL a v3 token was signed for, if the campaign's literals still have it."""
    if ref.index >= len(lits):
        return None
    url = lits[ref.index]
    return url if hmac.compare_digest(ref.url_hash, url_hash(url)) else None

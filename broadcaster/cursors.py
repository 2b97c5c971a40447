"""Opaque keyset cursors and the one pagination helper of every list endpoint (pure).

A cursor carries the query it came from (filter and sort), the resource it pages (app,
segment, campaign) and a keyset position, HMAC-signed. A request with `next` or `prev`
continues the cursor's query whatever filter or sort it also sends; only `limit` may change
(SPEC section 1: the hosted API's own SDK tests page that way). A tampered cursor, one from
another resource, or one whose signed payload does not have the expected shape is a 400.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson

from broadcaster import timefmt
from broadcaster.errors import bad_request

T = TypeVar("T")
MAC_BYTES = 16
# A filter of 10,000 ids compresses to well under this; GET cursors are bounded by the URL.
MAX_CURSOR_CHARS = 512 * 1024
DIRECTIONS = ("next", "prev")


@dataclass(frozen=True)
class PageRequest:
    """What one page request asks for once its cursor (if any) is opened."""

    scope: tuple[Any, ...]
    query: dict[str, Any]
    position: list[Any] | None
    backwards: bool
    limit: int


def _mac(secret: str, payload: bytes) -> bytes:
    return hmac.new(secret.encode(), payload, hashlib.sha256).digest()[:MAC_BYTES]


def seal(scope: Sequence[Any], query: Mapping[str, Any], position: list[Any], direction: str, secret: str) -> str:
    """direction: "next" or "prev" (which way the page that follows goes)."""
    assert direction in DIRECTIONS
    payload = zlib.compress(orjson.dumps(
        {"s": list(scope), "q": dict(query), "p": position, "d": direction}, option=orjson.OPT_SORT_KEYS
    ))
    return base64.urlsafe_b64encode(_mac(secret, payload) + payload).decode().rstrip("=")


def unseal(token: Any, field: str, scope: Sequence[Any], secret: str) -> tuple[dict[str, Any], list[Any], str]:
    """(query, position, direction) of a cursor issued for `scope`; anything else is a 400."""
    if not isinstance(token, str) or not token or len(token) > MAX_CURSOR_CHARS:
        raise bad_request(f"{field} must be a cursor string returned by a previous page")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (ValueError, TypeError):
        raise bad_request(f"{field} is not a valid cursor") from None
    mac, payload = raw[:MAC_BYTES], raw[MAC_BYTES:]
    if len(mac) != MAC_BYTES or not hmac.compare_digest(mac, _mac(secret, payload)):
        raise bad_request(f"{field} is not a valid cursor (altered, or issued by another server)")
    # Signed by us but perhaps by another version or endpoint: check its shape all the same.
    try:
        data = orjson.loads(zlib.decompress(payload))
    except (zlib.error, orjson.JSONDecodeError):
        raise bad_request(f"{field} is not a valid cursor") from None
    if not isinstance(data, dict) or not isinstance(data.get("q"), dict) \
            or not isinstance(data.get("p"), list) or data.get("d") not in DIRECTIONS:
        raise bad_request(f"{field} is not a valid cursor")
    if data.get("s") != orjson.loads(orjson.dumps(list(scope))):
        raise bad_request(f"{field} cursor belongs to another resource (another list, segment, campaign or app)")
    return data["q"], data["p"], data["d"]


def begin(
    source: Mapping[str, Any], scope: Sequence[Any], query: dict[str, Any], secret: str, *,
    limit: int, field_prefix: str = "",
) -> PageRequest:
    """The page a request asks for: with `next`/`prev` in `source`, the cursor's query and
    position (the request's own filter and sort are ignored); without, `query` from the start."""
    nxt, prv = source.get("next") or None, source.get("prev") or None
    if nxt and prv:
        raise bad_request(f"{field_prefix}next and {field_prefix}prev are mutually exclusive")
    if not (nxt or prv):
        return PageRequest(tuple(scope), query, None, False, limit)
    field = f"{field_prefix}{'next' if nxt else 'prev'}"
    q, pos, direction = unseal(nxt or prv, field, scope, secret)
    if direction != ("next" if nxt else "prev"):
        raise bad_request(f"{field} was given a {direction!r} cursor: send it as {field_prefix}{direction}")
    return PageRequest(tuple(scope), q, pos, bool(prv), limit)


def typed_position(req: PageRequest, kinds: Sequence[str]) -> list[Any] | None:
    """The position as SQL parameters: kinds are "text" or "time", one per sort key."""
    if req.position is None:
        return None
    if len(req.position) != len(kinds):
        raise bad_request("cursor does not match the sort it was issued for")
    out: list[Any] = []
    for kind, v in zip(kinds, req.position, strict=True):
        if not isinstance(v, str) or "\x00" in v:
            raise bad_request("cursor is not a valid cursor")
        out.append(timefmt.parse(v, "cursor") if kind == "time" else v)
    return out


def finish(
    req: PageRequest, rows: list[T], position_of: Callable[[T], list[Any]], secret: str,
) -> tuple[list[T], dict[str, str]]:
    """Trim the limit+1 rows fetched to the page, in the query's order, and its cursors.

    Forwards: `next` when more rows were fetched, `prev` when we came by cursor. Backwards
    (rows were fetched in reverse): the mirror image."""
    more = len(rows) > req.limit
    page = rows[:req.limit]
    if req.backwards:
        page.reverse()
    links: dict[str, str] = {}
    if page and (req.backwards or more):
        links["next"] = seal(req.scope, req.query, position_of(page[-1]), "next", secret)
    if page and (more if req.backwards else req.position is not None):
        links["prev"] = seal(req.scope, req.query, position_of(page[0]), "prev", secret)
    return page, links


def limit_of(value: Any, field: str, *, default: int, hi: int) -> int:
    """limit: 0 or absent means the default (the hosted API's 0..hi); strings of digits from
    query parameters are accepted."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if value is None or value == "":
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or (isinstance(value, float) and not value.is_integer()):
        raise bad_request(f"{field} must be an integer")
    n = int(value)
    if n < 0 or n > hi:
        raise bad_request(f"{field} must be between 0 and {hi}, got {n}")
    return n or default

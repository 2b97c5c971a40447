"""The cursor rules of SPEC section 1, on the pure helper every list endpoint uses."""

from __future__ import annotations

import base64
import hashlib
import hmac
import zlib

import orjson
import pytest

from broadcaster import cursors
from broadcaster.errors import ApiError

SECRET = "unit-secret"
SCOPE = ("targets", 7, 42)


def _first_page(query: dict, limit: int = 3) -> cursors.PageRequest:
    return cursors.begin({"limit": limit}, SCOPE, query, SECRET, limit=limit)


def _rows(values: list[str], req: cursors.PageRequest) -> tuple[list[str], dict[str, str]]:
    return cursors.finish(req, values, lambda v: [v], SECRET)


def _bad(fn, words: str) -> None:
    with pytest.raises(ApiError) as e:
        fn()
    assert e.value.status == 400 and e.value.code == 4
    assert words in e.value.message, e.value.message


def test_cursor_continues_its_query_whatever_filter_and_sort_come_with_it() -> None:
    query = {"filter": {}, "sort": [{"field": "target_id", "direction": 1}]}
    page, links = _rows(["a", "b", "c", "d"], _first_page(query))
    assert page == ["a", "b", "c"] and set(links) == {"next"}
    other = {"filter": {"target_id": {"$lte": "x"}}, "sort": [{"field": "target_id", "direction": -1}]}
    req = cursors.begin({"next": links["next"], **other}, SCOPE, other, SECRET, limit=3)
    assert req.query == query and req.position == ["c"] and not req.backwards


def test_limit_may_change_between_pages() -> None:
    _, links = _rows(["a", "b", "c", "d"], _first_page({"filter": {}}))
    req = cursors.begin({"next": links["next"]}, SCOPE, {}, SECRET, limit=50)
    assert req.limit == 50 and req.position == ["c"]
    page, more = _rows(["d", "e"], req)
    assert page == ["d", "e"] and set(more) == {"prev"}


def test_prev_pages_back_in_query_order() -> None:
    req = cursors.begin({}, SCOPE, {"filter": {}}, SECRET, limit=2)
    _, links = _rows(["a", "b", "c"], req)
    second = cursors.begin({"next": links["next"]}, SCOPE, {}, SECRET, limit=2)
    _, links2 = _rows(["c", "d", "e"], second)
    back = cursors.begin({"prev": links2["prev"]}, SCOPE, {}, SECRET, limit=2)
    assert back.backwards and back.position == ["c"]
    # backwards pages are fetched in reverse order and handed out in query order
    page, links3 = _rows(["b", "a"], back)
    assert page == ["a", "b"] and set(links3) == {"next"}


def test_cursor_of_another_segment_or_app_is_400() -> None:
    _, links = _rows(["a", "b", "c", "d"], _first_page({}))
    _bad(lambda: cursors.begin({"next": links["next"]}, ("targets", 7, 43), {}, SECRET, limit=3),
         "another resource")
    _bad(lambda: cursors.begin({"next": links["next"]}, ("targets", 8, 42), {}, SECRET, limit=3),
         "another resource")
    _bad(lambda: cursors.begin({"next": links["next"]}, ("segments", 7), {}, SECRET, limit=3),
         "another resource")


def test_tampered_or_foreign_server_cursor_is_400() -> None:
    _, links = _rows(["a", "b", "c", "d"], _first_page({}))
    token = links["next"]
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[-1] ^= 1
    tampered = base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    for bad in (tampered, token[:-2], "x" + token, "!!!", ""):
        _bad(lambda b=bad: cursors.unseal(b, "next", SCOPE, SECRET), "next")
    _bad(lambda: cursors.unseal(token, "next", SCOPE, "another-servers-secret"), "not a valid cursor")
    _bad(lambda: cursors.begin({"prev": token}, SCOPE, {}, SECRET, limit=3), "send it as next")
    _bad(lambda: cursors.begin({"next": token, "prev": token}, SCOPE, {}, SECRET, limit=3), "mutually exclusive")


def _signed(payload: bytes) -> str:
    mac = hmac.new(SECRET.encode(), payload, hashlib.sha256).digest()[:cursors.MAC_BYTES]
    return base64.urlsafe_b64encode(mac + payload).decode().rstrip("=")


@pytest.mark.parametrize("payload", [
    b"not zlib at all",
    zlib.compress(b"{not json"),
    zlib.compress(b"[1, 2]"),
    zlib.compress(orjson.dumps({"s": list(SCOPE), "q": [], "p": ["a"], "d": "next"})),
    zlib.compress(orjson.dumps({"s": list(SCOPE), "q": {}, "p": "a", "d": "next"})),
    zlib.compress(orjson.dumps({"s": list(SCOPE), "q": {}, "p": ["a"], "d": "sideways"})),
])
def test_signed_cursor_with_an_odd_payload_is_400(payload: bytes) -> None:
    _bad(lambda: cursors.unseal(_signed(payload), "next", SCOPE, SECRET), "not a valid cursor")


def test_position_types_and_length_are_checked() -> None:
    odd = _signed(zlib.compress(orjson.dumps({"s": list(SCOPE), "q": {}, "p": [5], "d": "next"})))
    req = cursors.begin({"next": odd}, SCOPE, {}, SECRET, limit=3)
    _bad(lambda: cursors.typed_position(req, ["text"]), "cursor")
    _bad(lambda: cursors.typed_position(req, ["time", "text"]), "cursor")
    when = _signed(zlib.compress(orjson.dumps({"s": list(SCOPE), "q": {}, "p": ["yesterday", "a"], "d": "next"})))
    _bad(lambda: cursors.typed_position(cursors.begin({"next": when}, SCOPE, {}, SECRET, limit=3), ["time", "text"]),
         "cursor")


def test_limit_zero_means_the_default() -> None:
    assert cursors.limit_of(0, "limit", default=100, hi=1000) == 100
    assert cursors.limit_of(None, "limit", default=100, hi=1000) == 100
    assert cursors.limit_of("25", "limit", default=100, hi=1000) == 25
    _bad(lambda: cursors.limit_of(1001, "limit", default=100, hi=1000), "limit")
    _bad(lambda: cursors.limit_of(-1, "limit", default=100, hi=1000), "limit")
    _bad(lambda: cursors.limit_of("ten", "users.limit", default=100, hi=1000), "users.limit")

"""No input reaches a 500: one table per input class, each a 400 (401 for api_key) in the
error shape naming the field. The probe of issue 12 found each of these answering 500."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

import orjson
import pytest

from tests.helpers import Api, assert_error


async def _seed(api: Api) -> None:
    st, body = await api.post("/users", {"users": {i: {"id": i, "name": i} for i in ("boss", "u1")}})
    assert st in (200, 201), body
    st, body = await api.post("/segments", {"id": "seg", "type": "user"})
    assert st in (200, 201), body
    st, body = await api.post("/campaigns", {"id": "c1", "sender_id": "boss", "user_ids": ["u1"],
                                             "message_template": {"text": "hi"}})
    assert st == 201, body


def _or(n: int) -> dict[str, Any]:
    return {"$or": [{"id": f"u{i}"} for i in range(n)]}


def _and(n: int) -> dict[str, Any]:
    return {"$and": [{"target_id": f"u{i}"} for i in range(n)]}


@pytest.mark.parametrize(("method", "path", "body", "words"), [
    ("POST", "/campaigns/query", {"filter": _or(1001)}, ["filter.$or", "1000 conditions"]),
    ("POST", "/campaigns/query", {"filter": _or(32_768)}, ["filter.$or", "1000 conditions"]),
    ("POST", "/channels", {"filter_conditions": {"$and": [{"id": {"$in": ["a"], "$ne": "b"}}] * 600}},
     ["filter_conditions", "1000 conditions"]),
    ("POST", "/segments", {"id": "s2", "type": "user", "filter": _or(5000)}, ["filter", "1000 conditions"]),
    ("POST", "/segments/seg/targets/query", {"filter": _and(1500)}, ["filter.$and", "1000 conditions"]),
])
async def test_filter_leaves_are_capped(api: Api, method: str, path: str, body: Any, words: list[str]) -> None:
    await _seed(api)
    st, out = await api.request(method, path, body)
    assert_error(st, out, 400, 4, *words)


@pytest.mark.parametrize(("method", "path", "body", "words"), [
    ("POST", "/campaigns/query", {"filter": {"created_at": {"$gt": "0001-01-01T00:00:00+05:00"}}},
     ["filter.created_at.$gt", "range"]),
    ("POST", "/campaigns/query", {"filter": {"updated_at": {"$in": ["9999-12-31T23:59:59-05:00"]}}},
     ["filter.updated_at.$in[0]", "range"]),
    ("POST", "/channels", {"filter_conditions": {"birthday": {"$lt": "0001-01-01T00:00+05:00"}}},
     ["filter_conditions.birthday.$lt", "range"]),
    ("POST", "/segments", {"id": "s3", "type": "user", "filter": {"created_at": {"$gte": "0001-01-01T00:00:00+14:00"}}},
     ["filter.created_at.$gte", "range"]),
    ("POST", "/segments/seg/targets/query", {"filter": {"created_at": {"$gt": "0001-01-01T00:00:00+05:00"}}},
     ["filter.created_at.$gt", "range"]),
    ("POST", "/campaigns/c1/start", {"scheduled_for": "0001-01-01T00:00:00+05:00"}, ["scheduled_for", "range"]),
])
async def test_datetime_overflow_is_a_400(api: Api, method: str, path: str, body: Any, words: list[str]) -> None:
    await _seed(api)
    st, out = await api.request(method, path, body)
    assert_error(st, out, 400, 4, *words)


async def test_poisoned_stored_timestamps_do_not_match(api: Api) -> None:
    """A stored custom value shaped like a timestamp but invalid compares as 'no match'."""
    st, body = await api.post("/users", {"users": {
        "bad": {"id": "bad", "seen": "2024-13-45T25:61"}, "feb": {"id": "feb", "seen": "2024-02-30T10:00:00Z"},
        "good": {"id": "good", "seen": "2024-06-01T10:00:00Z"}}})
    assert st in (200, 201), body
    for op in ("$gt", "$lt", "$gte", "$lte"):
        flt = {"seen": {op: "2024-03-01T00:00:00Z"}}
        st, body = await api.get("/users", params={"payload": orjson.dumps({"filter_conditions": flt}).decode()})
        assert st == 200, (op, body)
        assert {u["id"] for u in body["users"]} == ({"good"} if op.startswith("$gt") else set()), (op, body)


LONG = "x" * 7000


@pytest.mark.parametrize(("method", "path", "name"), [
    ("GET", "/campaigns/a%00b", "id"),
    ("GET", "/campaigns/c1%0A", "id"),
    ("GET", f"/campaigns/{LONG}", "id"),
    ("DELETE", f"/campaigns/c1/recipients/{LONG}", "target_id"),
    ("DELETE", "/campaigns/c1/recipients/u1%00", "target_id"),
    ("GET", "/segments/seg/target/u1%0A", "target_id"),
    ("GET", "/segments/s%20g", "id"),
    ("DELETE", "/users/u1%0A", "id"),
    ("POST", "/channels/messaging%0A/x/query", "type"),
    ("POST", f"/channels/messaging/{LONG}/query", "id"),
    ("POST", "/channels/messaging/a%00/message", "id"),
    ("PATCH", "/channels/messaging/x/member/u1%0A", "user_id"),
])
async def test_path_ids_are_validated(api: Api, method: str, path: str, name: str) -> None:
    await _seed(api)
    st, out = await api.request(method, path, {"message": {"text": "x"}} if method in ("POST", "PATCH") else None)
    assert_error(st, out, 400, 4, f"path parameter {name}")


@pytest.mark.parametrize(("method", "path", "body", "words"), [
    ("POST", "/users", {"users": {"alice\n": {"id": "alice\n"}}}, ["alice"]),
    ("POST", "/campaigns", {"id": "c2\n", "sender_id": "boss", "user_ids": ["u1"], "message_template": {"text": "x"}},
     ["id"]),
    ("POST", "/campaigns", {"sender_id": "boss", "user_ids": ["u1\n"], "message_template": {"text": "x"}},
     ["user_ids[0]"]),
    ("POST", "/campaigns", {"sender_id": "boss\n", "user_ids": ["u1"], "message_template": {"text": "x"}},
     ["sender_id"]),
    ("POST", "/segments/seg/addtargets", {"target_ids": ["u2\n"]}, ["target_ids"]),
    ("POST", "/segments", {"id": "s4\n", "type": "user"}, ["id"]),
])
async def test_trailing_newline_ids_are_refused(api: Api, method: str, path: str, body: Any, words: list[str]) -> None:
    await _seed(api)
    st, out = await api.request(method, path, body)
    assert_error(st, out, 400, 4, *words)


@pytest.mark.parametrize("key", ["ab%00cd", "%0A", "x" * 300, "a%20b", "%C3%A9"])
async def test_malformed_api_key_is_401_not_500(api: Api, key: str) -> None:
    resp = await api.client.get(f"/campaigns/c1?api_key={key}",
                                headers={"Authorization": api.creds.token(), "stream-auth-type": "jwt"})
    body = await resp.json()
    assert_error(resp.status, body, 401, 2, "api_key")


def _deep(n: int) -> Any:
    v: Any = "x"
    for _ in range(n):
        v = {"k": v}
    return v


@pytest.mark.parametrize("levels", [65, 254, 255, 300, 1000, 1023, 1030, 5000])
async def test_json_depth_is_a_400_at_any_depth(api: Api, levels: int) -> None:
    raw = b'{"users": {"d": {"id": "d", "custom": ' + b'{"k": ' * levels + b"1" + b"}" * levels + b"}}}"
    st, out = await api.post("/users", data=raw)
    assert_error(st, out, 400, 4, "nested" if levels < 1020 else "JSON")
    payload = '{"filter_conditions": ' + '{"k": ' * levels + '1' + '}' * levels + '}'
    if len(payload) < 6000:  # a longer query string is refused by aiohttp's parser itself
        st, out = await api.get("/users", params={"payload": payload})
        assert_error(st, out, 400, 4, "payload")


async def test_json_depth_within_limit_is_kept(api: Api) -> None:
    st, out = await api.post("/users", {"users": {"d": {"id": "d", "custom": _deep(60)}}})
    assert st in (200, 201), out


@pytest.mark.parametrize(("sent", "kept"), [
    ("req-123_abc.def:9", True), ("a" * 128, True), ("a" * 129, False), ("has space", False),
    ("tab\there", False), ("caf\u00e9", False), ("", False), ("x\u2028y", False),
])
async def test_client_request_id_strict(
    api: Api, caplog: pytest.LogCaptureFixture, sent: str, kept: bool,
) -> None:
    caplog.set_level(logging.INFO, logger="broadcaster.http")
    wire = sent.encode("utf-8").decode("latin-1")  # what the server reads from the raw header
    resp = await api.client.get("/healthz", headers={"X-Request-Id": wire})
    assert resp.status == 200
    rid = resp.headers["X-Request-Id"]
    if kept:
        assert rid == sent
    else:
        assert rid != sent and len(rid) == 32 and all(c in "0123456789abcdef" for c in rid)
        lines = [getattr(r, "fields", {}) for r in caplog.records if r.getMessage() == "request"]
        assert [f.get("client_request_id") for f in lines] == [repr(wire[:200])], lines


async def test_quoted_path_probe_from_the_issue(api: Api) -> None:
    """`GET /campaigns/a%00b` unauthenticated is a 401, authenticated a 400; never a 500."""
    resp = await api.client.get(f"/campaigns/{quote('a')}%00b")
    assert resp.status == 401
    st, out = await api.get("/campaigns/a%00b")
    assert_error(st, out, 400, 4, "path parameter id")

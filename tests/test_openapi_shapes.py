"""Answers of the endpoints issue 14 touched hold to the OpenAPI document's response schemas
(the document is the contract the SDK-facing shapes are written down in)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import jsonschema_rs

from broadcaster.api import v2
from broadcaster.openapi import document
from tests.helpers import Api
from tests.test_campaigns_api import campaign, users

DOC = document()


def _check(method: str, path: str, status: int, body: dict[str, Any]) -> None:
    op = DOC["paths"][path][method]
    code = str(status)
    resp = op["responses"][code]
    if "$ref" in resp:
        resp = DOC["components"]["responses"][resp["$ref"].rsplit("/", 1)[1]]
    schema = resp["content"]["application/json"]["schema"]
    root = {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema, "components": DOC["components"]}
    errors = [e.message for e in jsonschema_rs.validator_for(root).iter_errors(body)]
    assert not errors, (op["operationId"], errors[:5], body)


async def test_issue_14_answers_match_the_document(api: Api):
    await users(api, "boss", "u1", "u2")
    st, b = await api.post("/segments", {"type": "user", "id": "s"})
    _check("post", "/segments", st, b)
    st, b = await api.post("/segments/s/addtargets", {"target_ids": ["u1", "u2"]})
    _check("post", "/segments/{id}/addtargets", st, b)
    st, b = await api.get("/segments/s/target/u1")
    _check("get", "/segments/{id}/target/{target_id}", st, b)
    st, b = await api.post("/segments/s/targets/query", {"limit": 1})
    _check("post", "/segments/{id}/targets/query", st, b)
    assert b["next"]
    st, b = await api.post("/segments/s/deletetargets", {"target_ids": ["u2"]})
    _check("post", "/segments/{id}/deletetargets", st, b)
    st, b = await api.post("/segments/query", {"limit": 0})
    _check("post", "/segments/query", st, b)
    st, b = await api.post("/campaigns", campaign(id="c", sender_visibility="hidden"))
    _check("post", "/campaigns", st, b)
    st, b = await api.get("/campaigns/c", params={"limit": "1"})
    _check("get", "/campaigns/{id}", st, b)
    assert b["users"]["next"]
    st, b = await api.post("/campaigns/query", {"user_limit": 1})
    _check("post", "/campaigns/query", st, b)
    st, b = await api.post("/campaigns/c/start", {"scheduled_for": "2999-01-01T00:00:00Z"})
    _check("post", "/campaigns/{id}/start", st, b)
    st, b = await api.post("/campaigns/c/stop")
    _check("post", "/campaigns/{id}/stop", st, b)
    st, b = await api.get("/campaigns/c/stats")
    _check("get", "/campaigns/{id}/stats", st, b)
    st, b = await api.post("/channels/messaging/x/query", {"data": {"created_by_id": "boss", "members": ["boss", "u1"]}})
    st, b = await api.request("PATCH", "/channels/messaging/x/member/u1", {"set": {"archived": True}})
    _check("patch", "/channels/{type}/{id}/member/{user_id}", st, b)
    st, b = await api.post("/channels/messaging/x/hide", {"user_id": "boss"})
    _check("post", "/channels/{type}/{id}/hide", st, b)
    st, b = await api.post("/segments/s/targets/query", {"limit": -1})
    assert st == 400
    _check("post", "/segments/{id}/targets/query", st, b)


async def test_v2_answers_match_the_document(api: Api):
    """/api/v2 answers the V2 variants: built-in timestamps as integer nanoseconds."""
    await users(api, "boss", "u1")
    st, b = await api.post("/api/v2/chat/segments", {"type": "user", "id": "s2"})
    _check("post", "/api/v2/chat/segments", st, b)
    assert isinstance(b["segment"]["created_at"], int)
    await api.post("/api/v2/chat/segments/s2/addtargets", {"target_ids": ["u1"]})
    st, b = await api.post("/api/v2/chat/segments/s2/targets/query", {"Filter": {"target_id": "u1"}})
    _check("post", "/api/v2/chat/segments/{id}/targets/query", st, b)
    assert [t["target_id"] for t in b["targets"]] == ["u1"] and isinstance(b["targets"][0]["created_at"], int)
    st, b = await api.post("/api/v2/chat/campaigns", campaign(id="c2", user_ids=["u1"]))
    _check("post", "/api/v2/chat/campaigns", st, b)
    st, b = await api.get("/api/v2/chat/campaigns/c2", params={"limit": "1"})
    _check("get", "/api/v2/chat/campaigns/{id}", st, b)
    created = b["campaign"]["created_at"]
    st, b = await api.get("/campaigns/c2")
    assert b["campaign"]["created_at"].startswith(
        dt.datetime.fromtimestamp(created / 1e9, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S"))
    st, b = await api.post("/api/v2/chat/campaigns/c2/start", {"scheduled_for": "2200-01-01T00:00:00.000001Z"})
    assert st == 200, b
    _check("post", "/api/v2/chat/campaigns/{id}/start", st, b)
    assert b["campaign"]["scheduled_for"] == 7258118400 * 10**9 + 1000
    # past 2262 nanoseconds overflow 64 bits: the time stays a string rather than failing
    st, b = await api.put("/api/v2/chat/campaigns/c2", campaign(user_ids=["u1"]))
    assert st == 200, b
    assert v2.unix_ns("2999-01-01T00:00:00Z") == "2999-01-01T00:00:00Z"
    st, b = await api.post("/api/v2/chat/campaigns/c2/stop")
    _check("post", "/api/v2/chat/campaigns/{id}/stop", st, b)
    assert b["status"] == "stopped" and "campaign" not in b
    # the v2 aliases count as their root operations: one budget, listed once
    st, b = await api.get("/rate_limits")
    assert st == 200 and "StopCampaign" in b["server_side"], b
    assert not [op for op in b["server_side"] if op.startswith("v2.")]

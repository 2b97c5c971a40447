"""Campaign API: validation of every field, CRUD/query, lifecycle, a real worker run, ledger."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.helpers import Api, assert_error


async def users(api: Api, *ids: str, **extra: Any) -> None:
    st, body = await api.post("/users", {"users": {i: {"id": i, "name": f"N-{i}", **extra} for i in ids}})
    assert st == 201 or st == 200, body


def campaign(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "sender_id": "boss", "user_ids": ["u1", "u2"],
        "message_template": {"text": "Hi {{ receiver.name }} I'm {{ sender.name }}!"},
        "create_channels": True,
        "channel_template": {"type": "messaging", "id": "{{ receiver.id }}-{{ sender.id }}",
                             "custom": {"topic": "hello {{ receiver.name }}"}},
    }
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


async def until(api: Api, cid: str, status: str, timeout: float = 30) -> dict[str, Any]:
    for _ in range(int(timeout / 0.1)):
        st, body = await api.get(f"/campaigns/{cid}")
        assert st == 200, body
        if body["campaign"]["status"] == status:
            return body["campaign"]  # type: ignore[no-any-return]
        await asyncio.sleep(0.1)
    raise AssertionError(f"campaign {cid} never reached {status}: {body}")


@pytest.mark.parametrize(("over", "words"), [
    ({"user_ids": None}, ["segment_ids", "user_ids"]),
    ({"segment_ids": ["s1"]}, ["exactly one"]),
    ({"user_ids": []}, ["user_ids", "between 1"]),
    ({"user_ids": ["ok", 3]}, ["user_ids[1]"]),
    ({"user_ids": ["bad id!!"]}, ["user_ids[0]"]),
    ({"segment_ids": [f"s{i}" for i in range(26)], "user_ids": None}, ["segment_ids", "25"]),
    ({"sender_id": None}, ["sender_id is required"]),
    ({"sender_id": "ghost"}, ["sender_id", "ghost"]),
    ({"sender_id": 5}, ["sender_id"]),
    ({"sender_mode": "sometimes"}, ["sender_mode"]),
    ({"message_template": None}, ["message_template is required"]),
    ({"message_template": {"custom": {}}}, ["message_template.text"]),
    ({"message_template": {"text": 1}}, ["message_template.text"]),
    ({"message_template": {"text": "hi", "attachments": "x"}}, ["message_template.attachments"]),
    ({"message_template": {"text": "hi", "custom": []}}, ["message_template.custom"]),
    ({"message_template": {"text": "ok\n{{ receiver.name "}}, ["message_template.text", "line 2"]),
    ({"channel_template": None}, ["channel_template is required"]),
    ({"channel_template": {"id": "x"}}, ["channel_template.type"]),
    ({"channel_template": {"type": "messaging", "id": "{% if %}"}}, ["channel_template.id", "line 1"]),
    ({"channel_template": {"type": "messaging", "custom": {"a": "{{ }"}}}, ["channel_template.custom.a"]),
    ({"channel_template": {"type": "messaging", "members": "x"}}, ["channel_template.members"]),
    ({"channel_template": {"type": "messaging", "members_template": [{"channel_role": "x"}]}},
     ["channel_template.members_template[0].user_id"]),
    ({"create_channels": "yes"}, ["create_channels"]),
    ({"skip_webhook": 1}, ["skip_webhook"]),
    ({"skip_push": "no"}, ["skip_push"]),
    ({"name": 5}, ["name"]),
    ({"description": []}, ["description"]),
    ({"id": "bad id!"}, ["id"]),
    ({"message_template": {"text": "{% for a in b %}{% for c in d %}{% endfor %}{% endfor %}"}}, ["nested loops"]),
    ({"message_template": {"text": "{% include 'x' %}"}}, ["include"]),
])
async def test_create_rejects_bad_input(api: Api, over: dict[str, Any], words: list[str]) -> None:
    await users(api, "boss")
    st, body = await api.post("/campaigns", campaign(**over))
    assert_error(st, body, 400, 4, *words)


async def test_segment_rules(api: Api) -> None:
    await users(api, "boss")
    st, body = await api.post("/campaigns", campaign(user_ids=None, segment_ids=["nope"]))
    assert_error(st, body, 404, 16, "nope")
    await api.post("/segments", {"id": "us", "type": "user"})
    await api.post("/segments", {"id": "cs", "type": "channel"})
    st, body = await api.post("/campaigns", campaign(user_ids=None, segment_ids=["us", "cs"]))
    assert_error(st, body, 400, 4, "segment_ids")
    st, body = await api.post("/campaigns", campaign(user_ids=None, segment_ids=["cs"]))
    assert_error(st, body, 400, 4, "create_channels")


async def test_crud_query_and_lifecycle_errors(api: Api, other_api: Api) -> None:
    await users(api, "boss", "u1", "u2")
    st, body = await api.post("/campaigns", campaign(id="c1", name="first"))
    assert st == 201, body
    c = body["campaign"]
    assert c["status"] == "draft" and c["stats"]["stats_messages_sent"] == 0
    assert c["created_at"].endswith("Z")
    st, body = await api.post("/campaigns", campaign(id="c1"))
    assert_error(st, body, 409, 4, "c1")
    st, body = await other_api.get("/campaigns/c1")
    assert_error(st, body, 404, 16)
    st, body = await api.put("/campaigns/c1", campaign(name="renamed", user_ids=["u2"]))
    assert st == 200 and body["campaign"]["name"] == "renamed" and body["campaign"]["user_ids"] == ["u2"]
    for i in range(2, 6):
        await api.post("/campaigns", campaign(id=f"c{i}", name=f"n{i}"))
    st, body = await api.post("/campaigns/query", {"filter": {"name": {"$in": ["n2", "n3", "renamed"]}},
                                                   "sort": [{"field": "id", "direction": 1}], "limit": 2})
    assert st == 200, body
    assert [x["id"] for x in body["campaigns"]] == ["c1", "c2"]
    st, body2 = await api.post("/campaigns/query", {"filter": {"name": {"$in": ["n2", "n3", "renamed"]}},
                                                    "sort": [{"field": "id", "direction": 1}], "limit": 2,
                                                    "next": body["next"]})
    assert [x["id"] for x in body2["campaigns"]] == ["c3"] and "next" not in body2
    # the cursor carries its query: another filter sent with it is ignored (SPEC 1)
    st, body3 = await api.post("/campaigns/query", {"filter": {"status": "draft"}, "next": body["next"]})
    assert [x["id"] for x in body3["campaigns"]] == ["c3"], body3
    st, body = await api.post("/campaigns/query", {"next": body["next"][:-4] + "AAAA"})
    assert_error(st, body, 400, 4, "next")
    for action in ("stop", "pause", "resume"):
        st, body = await api.post(f"/campaigns/c2/{action}")
        assert_error(st, body, 400, 4, "'draft'")
    st, body = await api.post("/campaigns/c2/start", {"stop_at": "2000-01-01T00:00:00Z"})
    assert_error(st, body, 400, 4, "stop_at")
    st, body = await api.post("/campaigns/c2/start", {"scheduled_for": "tomorrow"})
    assert_error(st, body, 400, 4, "scheduled_for")
    st, body = await api.post("/campaigns/c2/start", {"scheduled_for": "2999-01-01T00:00:00+02:00"})
    assert st == 200 and body["campaign"]["status"] == "scheduled"
    assert body["campaign"]["scheduled_for"] == "2998-12-31T22:00:00.000000Z"
    st, body = await api.post("/campaigns/c2/start")
    assert_error(st, body, 400, 4, "'scheduled'")
    st, body = await api.post("/campaigns/c2/stop")
    assert st == 200 and body["campaign"]["status"] == "stopped"
    st, body = await api.put("/campaigns/c2", campaign())
    assert_error(st, body, 400, 4, "'stopped'")
    st, body = await api.delete("/campaigns/c2")
    assert st == 200
    st, body = await api.get("/campaigns/c2")
    assert_error(st, body, 404, 16)


async def test_run_on_a_worker(api: Api, pool: Any, start_worker: Any) -> None:
    ids = [f"u{i:03d}" for i in range(40)]
    await users(api, "boss", *ids[:-2], country="NL")
    start_worker(batch_size=7)
    st, body = await api.post("/campaigns", campaign(
        id="run", user_ids=[*ids, "boss", "u001"],
        message_template={"text": "Hi {{ receiver.name }} from {{ receiver.country }}",
                          "custom": {"tag": "{{ channel.cid }}"}}))
    assert st == 201, body
    st, body = await api.post("/campaigns/run/recipients/delete", None)
    st, body = await api.delete("/campaigns/run/recipients/u005")
    assert st == 200, body
    st, body = await api.post("/campaigns/run/start")
    assert st == 200 and body["campaign"]["status"] == "in_progress", body
    done = await until(api, "run", "completed")
    s = done["stats"]
    assert s["stats_recipients_total"] == 40 and s["progress"] == 1.0
    assert s["stats_messages_sent"] == 37 and s["stats_channels_created"] == 37
    rows = await pool.fetch("SELECT m.cid, m.text, m.custom, m.campaign_id, c.custom AS cc, c.member_count"
                            " FROM messages m JOIN channels c USING (app_id, cid)")
    assert len(rows) == 37
    by = {r["cid"]: r for r in rows}
    r = by["messaging:u001-boss"]
    assert r["text"] == "Hi N-u001 from NL" and r["custom"] == {"tag": "messaging:u001-boss"}
    assert r["campaign_id"] == "run" and r["cc"] == {"topic": "hello N-u001"} and r["member_count"] == 2
    led = {x["status"]: x["n"] for x in await pool.fetch(
        "SELECT status, count(*) AS n FROM campaign_recipients GROUP BY status")}
    assert led == {"sent": 37, "skipped": 3}
    st, body = await api.get("/campaigns/run/recipients", params={"status": "skipped", "limit": "2"})
    assert [x["target_id"] for x in body["recipients"]] == ["u005", "u038"]
    st, body = await api.get("/campaigns/run/recipients", params={"status": "skipped", "next": body["next"]})
    assert body["recipients"] == [{"target_id": "u039", "user_id": "u039", "status": "skipped", "error": "user_not_found"}]
    st, body = await api.post("/channels/messaging/u001-boss/read", {"user_id": "u001"})
    if st == 200:  # the read endpoint moves stats_users_read
        st, body = await api.get("/campaigns/run/stats")
        assert body["stats"]["stats_users_read"] == 1
        assert sum(p["read"] for p in body["timeline"]) == 1
    st, body = await api.get("/campaigns/run/stats")
    assert sum(p["sent"] for p in body["timeline"]) == 37
    st, body = await api.post("/campaigns/run/start")
    assert_error(st, body, 400, 4, "'completed'")
    st, body = await api.delete("/campaigns/run/recipients/u010")
    assert_error(st, body, 400, 4, "completed")


async def test_test_send_and_hostile_templates(api: Api, pool: Any, start_worker: Any) -> None:
    await users(api, "boss", "u1", "u2", "u3")
    hostile = "{{ receiver.__class__ }}{{ sender.name.__class__.__mro__ }}{{ cycler.__init__.__globals__ }}"
    st, body = await api.post("/campaigns", campaign(id="h", user_ids=["u1", "u2", "u3"], message_template={
        "text": "{% if receiver.id == 'u2' %}{{ 'x' * 100000 }}{% elif receiver.id == 'u3' %}"
                "{% for i in range(1000000) %}y{% endfor %}{% else %}ok" + hostile + "{% endif %}"}))
    assert st == 201, body
    st, body = await api.post("/campaigns/h/test", {"users": ["u1", "u2", "nobody"]})
    assert_error(st, body, 400, 4, "template_budget")
    assert "message_template.text" in body["message"] and "'u2'" in body["message"]
    assert await pool.fetchval("SELECT count(*) FROM messages WHERE text = 'ok'") == 0
    st, body = await api.post("/campaigns/h/test", {"users": ["u1", "nobody"]})
    assert st == 200, body
    sent = {x["user_id"]: x for x in body["sent"]}
    assert sent["u1"]["text"] == "ok"
    assert sent["nobody"]["error"] == "user_not_found"
    assert body["campaign"]["status"] == "draft" and body["campaign"]["stats"]["stats_messages_sent"] == 0
    st, body = await api.post("/campaigns/h/test", {"users": [f"x{i}" for i in range(101)]})
    assert_error(st, body, 400, 4, "users")
    start_worker()
    await api.post("/campaigns/h/start")
    done = await until(api, "h", "completed")
    assert done["stats"]["stats_messages_sent"] == 1 and done["stats"]["stats_messages_errored"] == 2
    errs = {r["target_id"]: r["error"] for r in await pool.fetch(
        "SELECT target_id, error FROM campaign_recipients WHERE campaign_id = 'h' AND status = 'errored'")}
    assert "20000" in errs["u2"] and "range()" in errs["u3"]



async def test_generated_ids_sort_in_creation_order(api: Api, pool: Any) -> None:
    """A campaign created without an id gets a UUIDv7: each sorts after the ones made before,
    so its audience and ledger rows go in at the right edge of their indexes."""
    import uuid

    await users(api, "boss", "u1", "u2")
    made = []
    for _ in range(5):
        st, body = await api.post("/campaigns", campaign())
        assert st == 201, body
        made.append(body["campaign"]["id"])
    assert all(uuid.UUID(i).version == 7 and str(uuid.UUID(i)) == i for i in made), made
    assert len(set(made)) == 5
    stored = await pool.fetch("SELECT id FROM campaigns WHERE id = ANY($1::text[]) ORDER BY created_at, id", made)
    assert [r["id"] for r in stored] == sorted(made)
    assert made == sorted(made)

"""Delivery policy (SPEC 5B), opt-out: campaigns_opt_out users are skipped `opted_out`, and
{{ unsubscribe_url }} is each recipient's signed link that opts them out (no auth)."""

from __future__ import annotations

import re
from typing import Any

from tests.helpers import Api, await_for


async def test_opted_out_skipped_and_the_unsubscribe_link_works_and_refuses_tampering(
    api: Api, pool: Any, start_worker: Any,
) -> None:
    st, body = await api.post("/users", {"users": {
        "boss": {"id": "boss"}, "ann": {"id": "ann", "name": "Ann"},
        "ben": {"id": "ben", "campaigns_opt_out": True}, "cat": {"id": "cat", "campaigns_opt_out": False}}})
    assert st in (200, 201), body
    st, body = await api.post("/campaigns", {
        "id": "news", "sender_id": "boss", "user_ids": ["ann", "ben", "cat"], "skip_webhook": True,
        "create_channels": True, "channel_template": {"type": "messaging"},
        "message_template": {"text": "News for {{ receiver.name }}. Unsubscribe: {{ unsubscribe_url }}"}})
    assert st == 201, body
    start_worker()
    assert (await api.post("/campaigns/news/start"))[0] == 200

    async def done() -> dict[str, Any] | None:
        st, b = await api.get("/campaigns/news")
        return b["campaign"] if b["campaign"]["status"] == "completed" else None
    camp = await await_for(done)
    assert camp["stats"]["stats_messages_sent"] == 2 and camp["stats"]["stats_recipients_skipped"] == 1
    st, body = await api.get("/campaigns/news/recipients")
    by = {r["target_id"]: r for r in body["recipients"]}
    assert by["ben"]["status"] == "skipped" and by["ben"]["error"] == "opted_out", by
    assert by["ann"]["status"] == by["cat"]["status"] == "sent"
    texts = {r["user_id"]: r["text"] for r in await pool.fetch(
        "SELECT r.user_id, m.text FROM campaign_recipients r JOIN messages m ON m.id = r.message_id"
        " WHERE r.campaign_id = 'news'")}
    links = {u: re.search(r"http://\S+/u/(\S+)$", t) for u, t in texts.items()}
    assert all(links.values()), texts
    assert links["ann"].group(1) != links["cat"].group(1)  # type: ignore[union-attr]
    path = "/u/" + links["ann"].group(1)  # type: ignore[union-attr]

    client = api.client
    tampered = path[:-2] + ("A" if path[-2] != "A" else "B") + path[-1]
    r = await client.get(tampered)
    assert r.status == 404 and "not valid" in await r.text()
    ann = await pool.fetchval("SELECT custom FROM users WHERE id = 'ann'")
    assert "campaigns_opt_out" not in ann
    for _ in range(2):  # no auth; a second use changes nothing and still confirms
        r = await client.get(path)
        assert r.status == 200 and r.content_type == "text/html" and "unsubscribed" in await r.text()
    ann = await pool.fetchval("SELECT custom FROM users WHERE id = 'ann'")
    assert ann["campaigns_opt_out"] is True
    st, body = await api.get("/users", params={"payload": '{"filter_conditions": {"id": "ann"}}'})
    assert st == 200 and body["users"][0]["campaigns_opt_out"] is True, body

    # the next campaign skips her
    st, body = await api.post("/campaigns", {
        "id": "more", "sender_id": "boss", "user_ids": ["ann", "cat"], "skip_webhook": True,
        "create_channels": True, "channel_template": {"type": "messaging"}, "message_template": {"text": "More"}})
    assert st == 201
    assert (await api.post("/campaigns/more/start"))[0] == 200

    async def more_done() -> list[Any] | None:
        st, b = await api.get("/campaigns/more/recipients")
        rs = b["recipients"]
        return rs if all(r["status"] != "pending" for r in rs) else None
    rs = {r["target_id"]: (r["status"], r.get("error")) for r in await await_for(more_done)}
    assert rs == {"ann": ("skipped", "opted_out"), "cat": ("sent", None)}

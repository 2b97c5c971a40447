"""A/B with a winner: the test fraction gets the variants, the campaign waits (in_progress,
waiting_for_winner), reads through the read endpoint decide, the winner goes to the rest;
totals match the ledger. A stop during the wait stops it there."""

from __future__ import annotations

from typing import Any

from broadcaster.domain import variants
from tests.helpers import Api, assert_error, await_for, seed_everyone
from tests.test_conversions import stats

AB = [{"id": "a", "weight": 1, "text": "A {{ receiver.name }}"},
      {"id": "b", "weight": 1, "text": "B {{ receiver.name }}"}]


async def create(api: Api, cid: str, wait: str) -> None:
    st, body = await api.post("/campaigns", {
        "id": cid, "sender_id": "boss", "segment_ids": ["everyone"], "skip_webhook": True,
        "message_template": {"text": "base", "variants": AB},
        "winner": {"metric": "read", "test_fraction": 0.3, "wait": wait},
        "create_channels": True, "channel_template": {"type": "messaging"}})
    assert st == 201, body
    assert body["campaign"]["winner"] == {"metric": "read", "test_fraction": 0.3, "wait": wait}
    st, body = await api.post(f"/campaigns/{cid}/start")
    assert st == 200, body


async def ledger(pool: Any, cid: str) -> list[Any]:
    return list(await pool.fetch(
        "SELECT target_id, variant_id, status, channel_cid FROM campaign_recipients WHERE campaign_id = $1", cid))


async def test_winner_by_reads_goes_to_the_rest(api: Api, pool: Any, start_worker: Any) -> None:
    n = 1000
    await seed_everyone(api, pool, n)
    start_worker(batch_size=100)
    await create(api, "w", "8s")

    async def waiting() -> dict[str, Any] | None:
        s = await stats(api, "w")
        return s if s.get("waiting_for_winner") else None

    s = await await_for(waiting)
    rows = await ledger(pool, "w")
    test = [u for u in (f"r{i:05d}" for i in range(1, n + 1)) if variants.in_test("w", u, 0.3)]
    assert sorted(r["target_id"] for r in rows) == test  # the test audience, and only it
    assert abs(len(test) - 300) <= 60
    assert s["stats_users_sent"] == len(test) and s["progress"] < 1 and "winner" not in s
    st, body = await api.get("/campaigns/w")
    assert body["campaign"]["status"] == "in_progress"
    # b's recipients read more: b wins (a has more sent but no reads)
    b_rows = [r for r in rows if r["variant_id"] == "b"][:5]
    for r in b_rows:
        ctype, chid = r["channel_cid"].split(":", 1)
        st, body = await api.post(f"/channels/{ctype}/{chid}/read", {"user_id": r["target_id"]})
        assert st == 200, body

    async def completed() -> dict[str, Any] | None:
        st, body = await api.get("/campaigns/w")
        return body["campaign"] if body["campaign"]["status"] == "completed" else None

    camp = await await_for(completed, timeout=60)
    s = camp["stats"]
    rows = await ledger(pool, "w")
    assert len(rows) == n and all(r["status"] in ("sent", "read") for r in rows)
    rest = [r for r in rows if r["target_id"] not in set(test)]
    assert rest and all(r["variant_id"] == "b" for r in rest)
    assert s["winner"] == {"variant": "b", "metric": "read"} and s["waiting_for_winner"] is False
    assert s["stats_users_sent"] == s["stats_messages_sent"] == n and s["progress"] == 1
    assert s["stats_recipients_skipped"] == 0
    per = {v: sum(1 for r in rows if r["variant_id"] == v) for v in ("a", "b")}
    assert {v: c["sent"] for v, c in s["variants"].items()} == per
    assert s["variants"]["b"]["read"] == 5
    msgs = await pool.fetchval("SELECT count(*) FROM messages WHERE campaign_id = 'w'")
    assert msgs == n


async def test_stop_during_the_wait(api: Api, pool: Any, start_worker: Any) -> None:
    await seed_everyone(api, pool, 300)
    start_worker(batch_size=100)
    await create(api, "ws", "1h")

    async def waiting() -> bool:
        return bool((await stats(api, "ws")).get("waiting_for_winner"))

    await await_for(waiting)
    sent = len(await ledger(pool, "ws"))
    st, body = await api.post("/campaigns/ws/stop")
    assert st == 200 and body["campaign"]["status"] == "stopped", body
    assert len(await ledger(pool, "ws")) == sent < 300
    assert await pool.fetchval("SELECT count(*) FROM campaign_batches WHERE campaign_id = 'ws' AND NOT done") == 0


async def test_winner_validation(api: Api) -> None:
    st, body = await api.post("/users", {"users": {"boss": {"id": "boss"}, "u1": {"id": "u1"}}})
    assert st in (200, 201), body
    base: dict[str, Any] = {"sender_id": "boss", "user_ids": ["u1"], "message_template": {"text": "t", "variants": AB}}
    ok = {"metric": "read", "test_fraction": 0.2, "wait": "1h"}
    for w, words in [({**ok, "metric": "opens"}, ("winner.metric",)), ({**ok, "test_fraction": 1}, ("winner.test_fraction",)),
                     ({**ok, "wait": "soon"}, ("winner.wait",)), ({**ok, "wait": "31d"}, ("winner.wait",)),
                     ("x", ("winner",))]:
        st, body = await api.post("/campaigns", {**base, "winner": w})
        assert_error(st, body, 400, 4, *words)
    st, body = await api.post("/campaigns", {**base, "message_template": {"text": "t"}, "winner": ok})
    assert_error(st, body, 400, 4, "winner", "variants")

"""The audience is fixed at start (SPEC 5): later changes to segments, targets and users
cannot add, drop or duplicate a recipient; every recipient is in the ledger listing from the
start (`pending` until its batch commits); a segment in use cannot be deleted."""

from __future__ import annotations

from typing import Any

from tests.helpers import Api, assert_error, await_for

N = 4000


async def setup(api: Api, pool: Any, cid: str, rate: int) -> list[str]:
    """N users in an explicit segment `list`, a 1:1 campaign on it, sending at `rate`/s."""
    ids = [f"r{i:05d}" for i in range(N)]
    await pool.execute(
        "INSERT INTO users (app_id, id, name) SELECT $1, u, 'N ' || u FROM unnest($2::text[]) u",
        api.creds.app_id, [*ids, "boss"])
    st, body = await api.post("/segments", {"id": "list", "type": "user"})
    assert st in (200, 201), body
    st, body = await api.post("/segments/list/addtargets", {"target_ids": ids})
    assert st in (200, 201), body
    await pool.execute("UPDATE apps SET settings = settings || jsonb_build_object('campaign_send_rate', $2::int)"
                       " WHERE id = $1", api.creds.app_id, rate)
    st, body = await api.post("/campaigns", {
        "id": cid, "sender_id": "boss", "segment_ids": ["list"], "skip_webhook": True,
        "message_template": {"text": "Hi {{ receiver.name }}"}, "create_channels": True,
        "channel_template": {"type": "messaging"},
    })
    assert st == 201, body
    return ids


async def campaign(api: Api, cid: str) -> dict[str, Any]:
    st, body = await api.get(f"/campaigns/{cid}")
    assert st == 200, body
    return body["campaign"]  # type: ignore[no-any-return]


async def pause_at_quarter(api: Api, cid: str) -> None:
    async def quarter() -> bool:
        return (await campaign(api, cid))["stats"]["stats_messages_sent"] >= N // 4
    await await_for(quarter, timeout=60)
    st, body = await api.post(f"/campaigns/{cid}/pause")
    assert st == 200 and body["campaign"]["status"] == "paused", body
    assert body["campaign"]["stats"]["stats_messages_sent"] < N, body


async def complete(api: Api, cid: str) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        c = await campaign(api, cid)
        return c if c["status"] == "completed" else None
    return await await_for(done, timeout=90)  # type: ignore[no-any-return]


async def ledger(pool: Any, cid: str) -> dict[str, tuple[str, str | None]]:
    return {r["target_id"]: (r["status"], r["error"]) for r in await pool.fetch(
        "SELECT target_id, status, error FROM campaign_recipients WHERE campaign_id = $1", cid)}


async def messages_per_recipient(pool: Any, cid: str) -> dict[str, int]:
    """Campaign messages counted per receiving member (the non-sender member of the channel)."""
    rows = await pool.fetch(
        "SELECT mb.user_id, count(*) AS n FROM messages m JOIN members mb ON mb.app_id = m.app_id"
        " AND mb.cid = m.cid AND mb.user_id <> 'boss' WHERE m.campaign_id = $1 GROUP BY mb.user_id", cid)
    return {r["user_id"]: r["n"] for r in rows}


def assert_stats_equal_ledger(stats: dict[str, Any], led: dict[str, tuple[str, str | None]]) -> None:
    by: dict[str, int] = {}
    for status, _ in led.values():
        by[status] = by.get(status, 0) + 1
    assert stats["stats_messages_sent"] == by.get("sent", 0), (stats, by)
    assert stats["stats_recipients_skipped"] == by.get("skipped", 0), (stats, by)
    assert stats["stats_messages_errored"] == by.get("errored", 0), (stats, by)
    assert stats["stats_recipients_total"] == len(led), (stats, by)


async def test_segment_in_use_kept_and_later_targets_ignored(api: Api, pool: Any, start_worker: Any) -> None:
    ids = await setup(api, pool, "fixed", rate=1000)
    start_worker()
    st, body = await api.post("/campaigns/fixed/start")
    assert st == 200, body
    assert body["campaign"]["stats"]["stats_recipients_total"] == N
    await pause_at_quarter(api, "fixed")
    st, body = await api.delete("/segments/list")
    assert_error(st, body, 400, 4, "'fixed'", "paused")
    late = [f"x{i:03d}" for i in range(100)]
    await pool.execute("INSERT INTO users (app_id, id) SELECT $1, unnest($2::text[])", api.creds.app_id, late)
    st, body = await api.post("/segments/list/addtargets", {"target_ids": late})
    assert st in (200, 201), body
    st, body = await api.post("/campaigns/fixed/resume")
    assert st == 200, body
    done = await complete(api, "fixed")
    led = await ledger(pool, "fixed")
    assert set(led) == set(ids)
    assert {s for s, _ in led.values()} == {"sent"}
    per = await messages_per_recipient(pool, "fixed")
    assert set(per) == set(ids) and set(per.values()) == {1}
    assert_stats_equal_ledger(done["stats"], led)
    assert done["stats"]["stats_recipients_total"] == N
    st, body = await api.delete("/segments/list")  # completed: no longer in use
    assert st == 200, body


async def test_targets_removed_and_users_deleted_mid_run(api: Api, pool: Any, start_worker: Any) -> None:
    ids = await setup(api, pool, "churn", rate=1000)
    start_worker()
    st, body = await api.post("/campaigns/churn/start")
    assert st == 200, body
    await pause_at_quarter(api, "churn")
    # what is still pending, as the ledger listing shows it
    pending: list[str] = []
    nxt: str | None = None
    while True:
        st, body = await api.get("/campaigns/churn/recipients",
                                 params={"status": "pending", "limit": "1000", **({"next": nxt} if nxt else {})})
        assert st == 200, body
        assert {r["status"] for r in body["recipients"]} <= {"pending"}
        pending += [r["target_id"] for r in body["recipients"]]
        nxt = body.get("next")
        if not nxt:
            break
    led = await ledger(pool, "churn")
    assert len(pending) + len(led) == N and not set(pending) & set(led)
    removed, deleted = pending[:200], pending[200:300]
    st, body = await api.post("/segments/list/deletetargets", {"target_ids": removed})
    assert st == 200, body
    for u in deleted:
        st, body = await api.delete(f"/users/{u}")
        assert st == 200, body
    # the filter of other segments and the explicit list changing does not matter either
    st, body = await api.post("/segments/list/deletetargets", {"target_ids": ids[:50]})
    assert st == 200, body
    st, body = await api.post("/campaigns/churn/resume")
    assert st == 200, body
    done = await complete(api, "churn")
    led = await ledger(pool, "churn")
    assert set(led) == set(ids)
    assert all(led[u] == ("skipped", "user_not_found") for u in deleted)
    assert all(led[u][0] == "sent" for u in removed)
    assert sum(1 for s, _ in led.values() if s == "sent") == N - len(deleted)
    per = await messages_per_recipient(pool, "churn")
    assert set(per) == set(ids) - set(deleted) and set(per.values()) == {1}
    assert_stats_equal_ledger(done["stats"], led)


async def test_every_recipient_listed_pending_from_the_start(api: Api, pool: Any, start_worker: Any) -> None:
    ids = await setup(api, pool, "list1", rate=0)
    st, body = await api.post("/campaigns/list1/start")  # no worker yet: nothing is sent
    assert st == 200 and body["campaign"]["stats"]["stats_recipients_total"] == N, body
    late = ["y1", "y2"]
    await pool.execute("INSERT INTO users (app_id, id) SELECT $1, unnest($2::text[])", api.creds.app_id, late)
    st, body = await api.post("/segments/list/addtargets", {"target_ids": late})
    assert st in (200, 201), body
    st, body = await api.get("/campaigns/list1/recipients", params={"limit": "3"})
    assert st == 200, body
    assert body["recipients"] == [{"target_id": i, "status": "pending"} for i in ids[:3]]
    assert "prev" not in body
    st, body = await api.get("/campaigns/list1/recipients", params={"limit": "3", "next": body["next"]})
    assert [r["target_id"] for r in body["recipients"]] == ids[3:6]
    st, back = await api.get("/campaigns/list1/recipients", params={"limit": "2", "prev": body["prev"]})
    assert [r["target_id"] for r in back["recipients"]] == ids[1:3]
    st, back = await api.get("/campaigns/list1/recipients", params={"limit": "2", "prev": back["prev"]})
    assert [r["target_id"] for r in back["recipients"]] == ids[0:1] and "prev" not in back
    st, body = await api.get("/campaigns/list1/recipients", params={"status": "pending", "limit": "1000"})
    assert len(body["recipients"]) == 1000 and "next" in body
    # the cursor carries its status filter (SPEC 1): a next with another status continues it
    st, more = await api.get("/campaigns/list1/recipients",
                             params={"status": "sent", "limit": "0", "next": body["next"]})
    assert st == 200 and more["recipients"][0] == {"target_id": ids[1000], "status": "pending"}, more
    st, body = await api.delete("/campaigns/list1/recipients/r00002")
    assert st == 200, body
    st, body = await api.delete("/campaigns/list1/recipients/y1")  # added after the start
    assert_error(st, body, 404, 16, "y1")
    st, body = await api.get("/campaigns/list1/recipients", params={"limit": "3"})
    assert [r["status"] for r in body["recipients"]] == ["pending", "pending", "skipped"]
    start_worker()
    done = await complete(api, "list1")
    led = await ledger(pool, "list1")
    assert set(led) == set(ids) and done["stats"]["stats_recipients_total"] == N
    assert done["stats"]["stats_messages_sent"] == N - 1
    st, body = await api.get("/campaigns/list1/recipients", params={"status": "pending"})
    assert body["recipients"] == []
    st, body = await api.get("/campaigns/list1/recipients", params={"limit": "2", "next": "x" * 10})
    assert st == 400, body

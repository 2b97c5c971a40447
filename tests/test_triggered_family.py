"""A triggered campaign with once_per_user false is one campaign to its user: its recipients,
interactions and timeline include its occurrences `<id>-occ-<n>`, and its users counters
count distinct users (a user reached three times is one user sent, three messages sent)."""

from __future__ import annotations

from typing import Any

from tests.helpers import Api, await_for
from tests.test_triggered import create, setup
from tests.test_triggered_repeat import visits, wait_total


async def _all_pages(api: Api, path: str, key: str, params: dict[str, str]) -> list[list[dict[str, Any]]]:
    pages, q = [], dict(params)
    while True:
        st, body = await api.get(path, params=q)
        assert st == 200, body
        pages.append(body[key])
        if not body.get("next"):
            return pages
        q = {"limit": params["limit"], "next": body["next"]}


async def test_the_parent_lists_and_counts_its_occurrences_as_one_campaign(
    api: Api, pool: Any, start_worker: Any,
) -> None:
    await setup(api, pool, 3)
    await create(api, "fam", {"event": "visit"}, once_per_user=False)
    start_worker()
    st, body = await api.post("/events", {"events": visits("u0001", ["a", "b", "c"]) + visits("u0002", ["d"])})
    assert st == 201 and body["recorded"] == 4, body
    assert await wait_total(pool, "fam", 4) == {"u0001": 3, "u0002": 1}
    cid = await pool.fetchval("SELECT channel_cid FROM campaign_recipients WHERE campaign_id = 'fam'"
                              " AND target_id = 'u0001'")
    st, body = await api.post(f"/channels/{cid.replace(':', '/')}/read", {"user_id": "u0001"})
    assert st in (200, 201), body

    async def counted() -> dict[str, Any] | None:
        st, body = await api.get("/campaigns/fam")
        s = body["campaign"]["stats"]
        return s if s["stats_messages_sent"] == 4 and s["stats_users_read"] >= 1 else None
    s = await await_for(counted, timeout=60)
    # u0001 reached three times and reading all three is one user sent and one user read
    assert (s["stats_users_sent"], s["stats_users_read"], s["read_rate"]) == (2, 1, 0.5), s
    assert s["stats_recipients_total"] == 4, s

    # recipients: every occurrence's row, in (user, occurrence) order, across pages both ways
    pages = await _all_pages(api, "/campaigns/fam/recipients", "recipients", {"limit": "3"})
    rows = [(r["target_id"], r["campaign_id"], r["status"]) for p in pages for r in p]
    assert rows == [("u0001", "fam", "read"), ("u0001", "fam-occ-2", "read"), ("u0001", "fam-occ-3", "read"),
                    ("u0002", "fam", "sent")], rows
    assert len({r["message_id"] for p in pages for r in p}) == 4
    st, first = await api.get("/campaigns/fam/recipients", params={"limit": "2"})
    st, second = await api.get("/campaigns/fam/recipients", params={"limit": "2", "next": first["next"]})
    assert [r["campaign_id"] for r in second["recipients"]] == ["fam-occ-3", "fam"], second
    st, back = await api.get("/campaigns/fam/recipients", params={"limit": "2", "prev": second["prev"]})
    assert back["recipients"] == first["recipients"], back
    st, body = await api.get("/campaigns/fam/recipients", params={"status": "read"})
    assert [r["campaign_id"] for r in body["recipients"]] == ["fam", "fam-occ-2", "fam-occ-3"], body
    # an occurrence on its own lists its own rows only
    st, body = await api.get("/campaigns/fam-occ-2/recipients")
    assert [(r["target_id"], r.get("campaign_id")) for r in body["recipients"]] == [("u0001", None)], body

    # interactions: each message sent, each read
    pages = await _all_pages(api, "/campaigns/fam/interactions", "interactions", {"type": "sent", "limit": "3"})
    assert [len(p) for p in pages] == [3, 1]
    sent = [(i["user_id"], i["data"]["campaign_id"]) for p in pages for i in p]
    assert sent == [("u0001", "fam"), ("u0001", "fam-occ-2"), ("u0001", "fam-occ-3"), ("u0002", "fam")], sent
    st, body = await api.get("/campaigns/fam/interactions", params={"type": "read"})
    assert [i["data"]["campaign_id"] for i in body["interactions"]] == ["fam", "fam-occ-2", "fam-occ-3"], body

    # the timeline counts every message and read
    st, body = await api.get("/campaigns/fam/stats", params={"granularity": "day"})
    assert st == 200, body
    assert sum(b["sent"] for b in body["timeline"]) == 4 and sum(b["read"] for b in body["timeline"]) == 3, body
    assert body["stats"]["stats_users_sent"] == 2, body

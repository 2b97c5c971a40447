"""Cursors issued before a repeating triggered campaign (once_per_user false) listed its
occurrences held [target_id] (the parent's rows only). They are still accepted: each goes on
strictly past its target, now with every occurrence's rows (store/occurrence_views.widen)."""

from __future__ import annotations

from typing import Any

from broadcaster import cursors
from tests.helpers import Api
from tests.test_triggered import create, setup
from tests.test_triggered_repeat import visits, wait_total


async def test_a_cursor_from_before_the_occurrences_were_listed_goes_on_past_its_target(
    api: Api, pool: Any, start_worker: Any, settings: Any,
) -> None:
    await setup(api, pool, 3)
    await create(api, "fam", {"event": "visit"}, once_per_user=False)
    start_worker()
    st, body = await api.post("/events", {"events": visits("u0001", ["a", "b"]) + visits("u0002", ["c", "d"])
                                          + visits("u0003", ["e"])})
    assert st == 201 and body["recorded"] == 5, body
    assert await wait_total(pool, "fam", 5) == {"u0001": 2, "u0002": 2, "u0003": 1}
    app, secret = api.creds.app_id, settings.cursor_secret

    def old(scope: str, query: dict[str, Any], target: str, direction: str) -> str:
        return cursors.seal((scope, app, "fam"), query, [target], direction, secret)

    st, body = await api.get("/campaigns/fam/recipients", params={"next": old("recipients", {"status": None},
                                                                              "u0001", "next")})
    assert st == 200, body
    assert [(r["target_id"], r["campaign_id"]) for r in body["recipients"]] == [
        ("u0002", "fam"), ("u0002", "fam-occ-2"), ("u0003", "fam")], body
    st, body = await api.get("/campaigns/fam/recipients", params={"prev": old("recipients", {"status": None},
                                                                              "u0003", "prev")})
    assert st == 200, body
    assert [(r["target_id"], r["campaign_id"]) for r in body["recipients"]] == [
        ("u0001", "fam"), ("u0001", "fam-occ-2"), ("u0002", "fam"), ("u0002", "fam-occ-2")], body

    st, body = await api.get("/campaigns/fam/interactions", params={"next": old("interactions", {"type": "sent"},
                                                                                "u0002", "next")})
    assert st == 200, body
    assert [(i["user_id"], i["data"]["campaign_id"]) for i in body["interactions"]] == [("u0003", "fam")], body
    # a cursor of today's shape continues within a target's occurrences
    st, first = await api.get("/campaigns/fam/interactions", params={"type": "sent", "limit": "1"})
    st, body = await api.get("/campaigns/fam/interactions", params={"next": first["next"], "limit": "1"})
    assert [(i["user_id"], i["data"]["campaign_id"]) for i in body["interactions"]] == [("u0001", "fam-occ-2")], body
    # a cursor of another listing is still refused
    st, body = await api.get("/campaigns/fam/recipients", params={"next": old("interactions", {"type": "sent"},
                                                                              "u0001", "next")})
    assert st == 400, body

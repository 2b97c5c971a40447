"""The 1:1 distinct channel of two users is one channel, found by its member pair, whoever
creates it (issue 15): get-or-create, a campaign, a second campaign, concurrently with each
other; channels written with the md5 ids of before migration 0090 are found after it; and the
batch write finds and creates channels through the pair index."""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import asyncpg

from broadcaster import ids
from broadcaster.migrate import migrate, migrations_dir
from broadcaster.services import sending
from broadcaster.store import campaigns, distinct, fanwrite
from tests.conftest import _db_url
from tests.helpers import Api, await_for

SENDER = "boss"


async def seed(api: Api, pool: Any, n: int) -> list[str]:
    users = [f"u{i:04d}" for i in range(n)]
    await pool.execute(
        "INSERT INTO users (app_id, id, name) SELECT $1, u, 'N ' || u FROM unnest($2::text[]) u",
        api.creds.app_id, [SENDER, *users])
    return users


async def segment(api: Api, sid: str, users: list[str]) -> None:
    st, body = await api.post("/segments", {"id": sid, "type": "user"})
    assert st in (200, 201), body
    st, body = await api.post(f"/segments/{sid}/addtargets", {"target_ids": users})
    assert st in (200, 201), body


async def start(api: Api, cid: str, seg: str) -> None:
    st, out = await api.post("/campaigns", {"id": cid, "sender_id": SENDER, "skip_webhook": True,
                                            "segment_ids": [seg], "create_channels": True, "channel_template": {"type": "messaging"},
                                            "message_template": {"text": "Hi {{ receiver.name }}"}})
    assert st == 201, out
    st, out = await api.post(f"/campaigns/{cid}/start")
    assert st == 200, out


async def completed(api: Api, cid: str) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        st, c = await api.get(f"/campaigns/{cid}")
        return c["campaign"] if c["campaign"]["status"] == "completed" else None
    return await await_for(done, timeout=120)  # type: ignore[no-any-return]


async def get_or_create(api: Api, user: str) -> str:
    members = [user, SENDER] if int(user[1:]) % 2 else [SENDER, user]  # either order
    st, body = await api.post("/channels/messaging/query", {"data": {"created_by_id": user, "members": members}})
    assert st == 200, body
    return str(body["channel"]["cid"])


async def pair_channels(pool: Any, app_id: int) -> dict[str, list[str]]:
    """user -> the channels whose members are exactly the sender and that user."""
    rows = await pool.fetch(
        "SELECT m.cid, array_agg(m.user_id ORDER BY m.user_id) AS who FROM members m WHERE m.app_id = $1"
        " GROUP BY m.cid HAVING bool_or(m.user_id = $2)", app_id, SENDER)
    out: dict[str, list[str]] = {}
    for r in rows:
        others = [u for u in r["who"] if u != SENDER]
        assert len(others) == 1 and len(r["who"]) == 2, r  # no duplicated or foreign member rows
        out.setdefault(others[0], []).append(r["cid"])
    return out


async def test_one_channel_per_pair_whoever_creates_it_concurrently(api: Api, pool: Any, start_worker: Any) -> None:
    users = await seed(api, pool, 900)
    await segment(api, "first", users[:450])
    await segment(api, "all", users)
    await segment(api, "again", users)
    start_worker()
    # campaign 1 over u0000..u0449 while get-or-create makes u0300..u0599 (overlapping both ways)
    calls = [get_or_create(api, u) for u in reversed(users[300:600])]
    _, *cids = await asyncio.gather(start(api, "c1", "first"), *calls)
    got = dict(zip(reversed(users[300:600]), cids, strict=True))
    await completed(api, "c1")
    # two campaigns to everyone at once (half of them have a channel already) and more get-or-creates
    more = [get_or_create(api, u) for u in users[750:]]
    _, _, *cids = await asyncio.gather(start(api, "c2", "all"), start(api, "c3", "again"), *more)
    got.update(zip(users[750:], cids, strict=True))
    c2, c3 = await completed(api, "c2"), await completed(api, "c3")
    assert c2["stats"]["stats_messages_sent"] == c3["stats"]["stats_messages_sent"] == 900

    chans = await pair_channels(pool, api.creds.app_id)
    assert sorted(chans) == users and all(len(c) == 1 for c in chans.values()), \
        [u for u, c in chans.items() if len(c) != 1]
    one = {u: c[0] for u, c in chans.items()}
    assert {u: one[u] for u in got} == got  # get-or-create answered the campaign's channel
    msgs = await pool.fetch("SELECT campaign_id, cid, count(*) AS n FROM messages WHERE app_id = $1"
                            " GROUP BY campaign_id, cid", api.creds.app_id)
    by_campaign = {(r["campaign_id"], r["cid"]): r["n"] for r in msgs}
    for u in users:
        for c in (["c1"] if u < users[450] else []) + ["c2", "c3"]:
            assert by_campaign.get((c, one[u])) == 1, (u, c)
    ledger = await pool.fetch("SELECT campaign_id, target_id, channel_cid FROM campaign_recipients"
                              " WHERE app_id = $1", api.creds.app_id)
    assert all(r["channel_cid"] == one[r["target_id"]] for r in ledger) and len(ledger) == 450 + 900 + 900
    counts = await pool.fetch("SELECT member_count FROM channels WHERE app_id = $1 AND cid = ANY($2::text[])",
                              api.creds.app_id, list(one.values()))
    assert {r[0] for r in counts} == {2}
    # the pair key of every one of them, and new ids in creation order (not hashes)
    rows = await pool.fetch("SELECT id, pair_lo, pair_hi FROM channels WHERE app_id = $1", api.creds.app_id)
    assert all(r["id"].startswith(ids.DISTINCT_PREFIX) and len(r["id"]) == 45 for r in rows)
    assert {(r["pair_lo"], r["pair_hi"]) for r in rows} == {ids.member_pair(SENDER, u) for u in users}


LEGACY = [  # (channel id, members): written as before migration 0090
    (ids.distinct_channel_id(["ann", "bob"]), ["ann", "bob"]),
    (ids.distinct_channel_id(["solo"]), ["solo"]),  # a user's channel with itself
    (ids.distinct_channel_id(["boss", "cat"]), ["boss", "cat", "mod"]),  # a campaign's, members_template
    (ids.distinct_channel_id(["ann", "bob", "cat"]), ["ann", "bob", "cat"]),  # 3 members: no pair
    ("explicit", ["ann", "cat"]),  # an explicit id: no pair
    (ids.distinct_channel_id(["dan", "eve"]), ["dan"]),  # lost a member: no pair any more
]


async def test_migration_gives_legacy_distinct_channels_their_pair(pg_admin_url: str, tmp_path: Path) -> None:
    name = f"mig_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(pg_admin_url)
    await admin.execute(f"CREATE DATABASE {name}")
    url = _db_url(pg_admin_url, name)
    before = tmp_path / "before"
    before.mkdir()
    for p in migrations_dir().iterdir():
        if p.suffix == ".sql" and int(p.name[:4]) < 90:
            shutil.copy(p, before / p.name)
    try:
        await migrate(url, before)
        conn = await asyncpg.connect(url)
        try:
            app_id = await conn.fetchval("INSERT INTO apps (name, api_key, api_secret) VALUES ('a', 'k', 's') RETURNING id")
            for chid, members in LEGACY:
                await conn.execute("INSERT INTO channels (app_id, cid, type, id, member_count) VALUES"
                                   " ($1, 'messaging:' || $2, 'messaging', $2, $3)", app_id, chid, len(members))
                await conn.execute("INSERT INTO members (app_id, cid, user_id) SELECT $1, 'messaging:' || $2, u"
                                   " FROM unnest($3::text[]) u", app_id, chid, members)
            assert "0090_distinct_pairs.sql" in await migrate(url)
            pairs = {r["id"]: (r["pair_lo"], r["pair_hi"]) for r in await conn.fetch(
                "SELECT id, pair_lo, pair_hi FROM channels")}
            assert pairs == {
                LEGACY[0][0]: ("ann", "bob"), LEGACY[1][0]: ("solo", "solo"), LEGACY[2][0]: ("boss", "cat"),
                LEGACY[3][0]: (None, None), "explicit": (None, None), LEGACY[5][0]: (None, None)}
            # found by pair as get-or-create and campaigns look them up
            assert await distinct.find(conn, app_id, "messaging", "ann", "bob") == LEGACY[0][0]
            assert await distinct.find(conn, app_id, "messaging", "solo", "solo") == LEGACY[1][0]
            assert await distinct.find(conn, app_id, "other", "ann", "bob") is None
            assert await distinct.ids_with(conn, app_id, "messaging", "boss", ["cat", "ann", "zed"], live=True) == {
                "cat": LEGACY[2][0]}
        finally:
            await conn.close()
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


def _nodes(plan: Any) -> list[dict[str, Any]]:
    out = [plan]
    for p in plan.get("Plans", []):
        out += _nodes(p)
    return out


class Explaining:
    """A connection whose batch write (fetchrow) runs as EXPLAIN ANALYZE instead: the plan the
    real statement gets with the real parameters; the caller rolls the transaction back."""

    def __init__(self, conn: Any) -> None:
        self.conn, self.plans = conn, []  # type: list[dict[str, Any]]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)

    async def fetchrow(self, query: str, *args: Any) -> dict[str, Any]:
        raw = await self.conn.fetchval("EXPLAIN (ANALYZE, FORMAT JSON) " + query, *args)
        self.plans.append((json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"])
        return {"sent": 0, "created": 0, "others": 0, "rows": []}


async def test_batch_write_finds_and_creates_channels_through_the_pair_index(api: Api, pool: Any) -> None:
    users = await seed(api, pool, 600)
    st, out = await api.post("/campaigns", {"id": "x", "sender_id": SENDER, "user_ids": users[:1],
                                            "create_channels": True, "channel_template": {"type": "messaging"},
                                            "message_template": {"text": "Hi"}})
    assert st == 201, out
    async with pool.acquire() as conn:
        camp = await campaigns.get(conn, api.creds.app_id, "x")
        await sending.send_test(conn, camp, users[300:], False)  # the channels of half of them
        await conn.execute("ANALYZE")
        for batch, existing in ((users[:300], False), (users[300:], True)):
            probe = Explaining(conn)
            tx = conn.transaction()
            await tx.start()
            try:
                await conn.execute(fanwrite._PROBES)  # as a batch's transaction does before its write
                # the test send's steps, its write explained (test sends and batches share it)
                sender = await sending.sender_view(conn, camp)
                rows = await fanwrite.users_by_ids(conn, api.creds.app_id, batch)
                b, sh = await sending._render(conn, camp, rows, sender, channels=False, test=True, tracking=None)
                await fanwrite.write(probe, camp, -1, sh, b, len(rows), False, sender, "", test=True)  # type: ignore[arg-type]
            finally:
                await tx.rollback()
            nodes = [n for p in probe.plans for n in _nodes(p)]
            on_channels = [n for n in nodes if n.get("Relation Name") == "channels"]
            inserts = [n for n in on_channels if n.get("Operation") == "Insert"]
            distinct_insert = [n for n in inserts if n.get("Conflict Arbiter Indexes") == ["channels_distinct_pair"]]
            assert len(distinct_insert) == 1, inserts
            assert distinct_insert[0]["Actual Rows"] == (0 if existing else len(batch))
            # the pair lookup of each recipient: one probe of the pair index each, no other scan
            lookups = [n for n in on_channels if n.get("Subplan Name", "").startswith("SubPlan")]
            assert [(n["Node Type"], n["Index Name"]) for n in lookups] == [("Index Scan", "channels_distinct_pair")]
            assert lookups[0]["Actual Loops"] == len(batch)
            assert lookups[0]["Actual Rows"] * lookups[0]["Actual Loops"] == (len(batch) if existing else 0)
            # nothing reads channels any other way (the include-mode count update runs on no rows)
            others = [n for n in on_channels if n not in inserts and n not in lookups]
            assert all(n["Actual Loops"] <= 1 and n.get("Actual Rows", 0) == 0 for n in others), others

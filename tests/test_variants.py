"""A/B variants: the deterministic weighted choice, a 10,000-recipient 50/50 campaign split
within 3 %, the ledger and messages recording the variant, stats.variants against the ledger,
and validation."""

from __future__ import annotations

from typing import Any

from broadcaster.domain import variants
from tests.helpers import Api, assert_error, await_for, seed_everyone
from tests.test_conversions import stats

AB = [{"id": "a", "weight": 1, "text": "A for {{ receiver.name }}"},
      {"id": "b", "weight": 1, "text": "B for {{ receiver.name }}", "custom": {"tone": "bold"}}]


def test_choice_is_deterministic_and_follows_weights() -> None:
    ids = [f"user-{i}" for i in range(10_000)]
    got = [variants.choose("spring", u, AB) for u in ids]
    assert abs(got.count("a") - 5000) <= 300, got.count("a")
    assert got == [variants.choose("spring", u, AB) for u in ids]  # a re-run: the same split
    other = [variants.choose("autumn", u, AB) for u in ids]
    assert other != got  # the campaign is part of the hash: not the same users always first
    skew = [{"id": "x", "weight": 1, "text": "x"}, {"id": "y", "weight": 3, "text": "y"}]
    n_x = sum(variants.choose("c", u, skew) == "x" for u in ids)
    assert abs(n_x - 2500) <= 300, n_x


def test_the_choice_is_the_hash_point_on_the_cumulative_weights() -> None:
    """The batch assignment places int(blake2b(campaign, target)) / 2**64 on the cumulative
    weights, as campaigns started before it were assigned (a recipient keeps its variant)."""
    import hashlib

    vs = [{"id": "x", "weight": 0.3}, {"id": "y", "weight": 2.7}, {"id": "z", "weight": 1e-6}]
    total, acc, bounds = 3.000001, 0.0, []
    for v in vs:
        acc += float(v["weight"]) / total
        bounds.append(acc)
    ids = [f"u{i}" for i in range(20_000)]

    def want(t: str) -> str:
        u = int.from_bytes(hashlib.blake2b(f"camp\x00{t}".encode(), digest_size=8).digest(), "big") / 2**64
        return next((str(v["id"]) for v, b in zip(vs, bounds, strict=True) if u < b), "z")

    assert variants.chooser("camp", vs)(ids) == [want(t) for t in ids]
    for b in (0.5, 1 / 3, 1.0, 1e-300):  # each edge: the least 8-byte value whose point reaches it
        e = variants._edge(b)
        x = int.from_bytes(e, "big") if len(e) == 8 else 2**64
        assert x / 2**64 >= b > (x - 1) / 2**64


async def test_variants_split_record_and_stats(api: Api, pool: Any, start_worker: Any) -> None:
    n = 10_000
    await seed_everyone(api, pool, n)
    st, body = await api.post("/campaigns", {
        "id": "ab", "sender_id": "boss", "segment_ids": ["everyone"], "skip_webhook": True,
        "message_template": {"text": "base", "custom": {"k": 1}, "variants": AB},
        "create_channels": True, "channel_template": {"type": "messaging"}})
    assert st == 201, body
    assert body["campaign"]["message_template"]["variants"] == AB
    start_worker(batch_size=1000)
    st, body = await api.post("/campaigns/ab/start")
    assert st == 200, body

    async def done() -> bool:
        return bool((await stats(api, "ab"))["progress"] == 1)

    await await_for(done, timeout=90)
    rows = await pool.fetch(
        "SELECT r.target_id, r.variant_id, r.channel_cid, m.text, m.custom FROM campaign_recipients r"
        " JOIN messages m ON m.app_id = r.app_id AND m.id = r.message_id WHERE r.campaign_id = 'ab'")
    assert len(rows) == n
    by = {"a": 0, "b": 0}
    for r in rows:
        v = r["variant_id"]
        assert v == variants.choose("ab", r["target_id"], AB)  # deterministic: the same on any re-run
        by[v] += 1
        name = "R" + str(int(r["target_id"][1:]))
        assert r["text"] == f"{v.upper()} for {name}"
        assert r["custom"] == ({"k": 1, "variant_id": "a"} if v == "a" else {"tone": "bold", "variant_id": "b"})
    assert abs(by["a"] - n / 2) <= 0.03 * n, by

    readers = [r for r in rows if r["variant_id"] == "b"][:7] + [r for r in rows if r["variant_id"] == "a"][:3]
    for r in readers:
        ctype, chid = r["channel_cid"].split(":", 1)
        st, body = await api.post(f"/channels/{ctype}/{chid}/read", {"user_id": r["target_id"]})
        assert st == 200, body
    st, body = await api.post("/conversions", {"conversions": [
        {"user_id": readers[0]["target_id"], "event": "buy"}, {"user_id": readers[-1]["target_id"], "event": "buy"}]})
    assert st == 200 and body["attributed"] == 2, body
    s = await stats(api, "ab")
    assert s["variants"] == {"a": {"sent": by["a"], "read": 3, "clicked": 0, "converted": 1},
                             "b": {"sent": by["b"], "read": 7, "clicked": 0, "converted": 1}}
    assert s["stats_users_sent"] == n and s["stats_users_read"] == 10

    st, body = await api.get("/campaigns/ab/interactions", params={"type": "read"})
    assert st == 200, body
    assert sorted((i["user_id"], i["variant"]) for i in body["interactions"]) == sorted(
        (r["target_id"], r["variant_id"]) for r in readers)

    st, body = await api.get("/campaigns/ab/interactions", params={"type": "converted"})
    assert sorted(i["variant"] for i in body["interactions"]) == ["a", "b"]

    # a test send gives a user the variant the campaign gave them
    uid = readers[0]["target_id"]
    st, body = await api.post("/campaigns/ab/test", {"users": [uid]})
    assert st == 200, body
    text = await pool.fetchval("SELECT text FROM messages WHERE id = $1", body["sent"][0]["message_id"])
    assert text.startswith("B for ")


async def test_variant_validation(api: Api) -> None:
    st, body = await api.post("/users", {"users": {"boss": {"id": "boss"}, "u1": {"id": "u1"}}})
    assert st in (200, 201), body
    base: dict[str, Any] = {"sender_id": "boss", "user_ids": ["u1"]}
    for vs, words in [
        ([AB[0]], ("variants", "2 to 10")),
        ([AB[0], {**AB[1], "id": "a"}], ("variants[1].id", "twice")),
        ([AB[0], {**AB[1], "weight": 0}], ("variants[1].weight",)),
        ([AB[0], {"id": "b"}], ("variants[1].text",)),
        ([AB[0], {**AB[1], "text": "{{ broken"}], ("variants[1].text",)),
        ([AB[0], {**AB[1], "custom": []}], ("variants[1].custom",)),
        ("ab", ("variants",)),
    ]:
        st, body = await api.post("/campaigns", {**base, "message_template": {"text": "t", "variants": vs}})
        assert_error(st, body, 400, 4, *words)


async def test_channel_audience_variants_count_conversions(api: Api, pool: Any, start_worker: Any) -> None:
    """A channel segment's recipients are channels: a conversion is counted for the variant
    of the channel's ledger row it was attributed through."""
    people = [f"m{i}" for i in range(12)]
    st, body = await api.post("/users", {"users": {u: {"id": u, "name": u} for u in ["boss", *people]}})
    assert st in (200, 201), body
    for u in people:
        st, body = await api.post(f"/channels/messaging/g-{u}/query", {"data": {"created_by_id": "boss",
                                                                         "members": ["boss", u]}})
        assert st in (200, 201), body
    st, body = await api.post("/segments", {"id": "groups", "type": "channel"})
    assert st == 201, body
    st, body = await api.post("/segments/groups/addtargets", {"target_ids": [f"messaging:g-{u}" for u in people]})
    assert st in (200, 201), body
    st, body = await api.post("/campaigns", {
        "id": "chab", "sender_id": "boss", "segment_ids": ["groups"], "skip_webhook": True,
        "message_template": {"text": "x", "variants": AB}})
    assert st == 201, body
    start_worker()
    st, body = await api.post("/campaigns/chab/start")
    assert st == 200, body

    async def done() -> bool:
        return bool((await stats(api, "chab"))["progress"] == 1)

    await await_for(done, timeout=90)
    led = {r["target_id"]: r["variant_id"] for r in await pool.fetch(
        "SELECT target_id, variant_id FROM campaign_recipients WHERE campaign_id = 'chab' AND status = 'sent'")}
    assert len(led) == len(people)
    buyers = people[:5]
    st, body = await api.post("/conversions", {"conversions": [
        {"user_id": u, "event": "buy"} for u in buyers for _ in range(2)]})
    assert st == 200 and body["attributed"] == 10, body
    want = {v: {"sent": sum(x == v for x in led.values()), "read": 0, "clicked": 0,
                "converted": sum(led[f"messaging:g-{u}"] == v for u in buyers)} for v in ("a", "b")}
    assert (await stats(api, "chab"))["variants"] == want
    assert (await stats(api, "chab"))["stats_users_converted"] == 5

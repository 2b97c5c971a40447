"""The send path, one for every audience: read a batch's pending recipients, render them
(domain/render), write them in one statement (store/fanwrite). Test sends take the same path
without ledger rows or counters."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import asyncpg

from broadcaster import timefmt
from broadcaster.domain import links, render, unsubscribe, variants
from broadcaster.services import policy
from broadcaster.store import distinct, fanwrite
from broadcaster.store.ledger import Tx
from broadcaster.templating import CACHE as TEMPLATE_CACHE
from broadcaster.templating import TEST_SEND_SECONDS, CampaignTemplates, batch_budget, user_view


def templates_for(camp: asyncpg.Record) -> CampaignTemplates:
    """Compiled once per campaign (and version) per process; the cache is bounded by bytes."""
    return TEMPLATE_CACHE.get((camp["app_id"], camp["id"]), camp["updated_at"],
                              camp["message_template"], camp["channel_template"])


async def sender_view(conn: Tx, camp: asyncpg.Record) -> dict[str, Any]:
    rows = await fanwrite.users_by_ids(conn, camp["app_id"], [camp["sender_id"]])
    return user_view(rows[0]) if rows and rows[0]["found"] else {"id": camp["sender_id"], "name": ""}


def _budgeted(seconds: float | None, fn: Any, *args: Any, **kw: Any) -> Any:
    with batch_budget(seconds):
        return fn(*args, **kw)


async def _render_users(
    conn: Tx, camp: asyncpg.Record, tpl: CampaignTemplates, rows: list[asyncpg.Record],
    sender: dict[str, Any], test: bool,
) -> render.Batch:
    async def run(fn: Any, *args: Any, **kw: Any) -> Any:
        if not test:
            return _budgeted(None, fn, *args, **kw)
        # Off the event loop under the test send's own budget (it answers 400 when over it):
        # other tenants' requests keep being served meanwhile.
        return await asyncio.to_thread(_budgeted, TEST_SEND_SECONDS, fn, *args, **kw)

    existing = None
    known: dict[str, str] = {}
    create, ctype = bool(camp["create_channels"]), render.channel_type(camp)
    if tpl.channel_id is None and (not create or render.mentions_channel(tpl)):
        # the ids are shipped (probed, or read by templates): find the pairs' channels first
        known = await distinct.ids_with(conn, camp["app_id"], ctype, camp["sender_id"],
                                        [r["id"] for r in rows], live=not create)
    if not create:  # only channels that exist
        if tpl.channel_id is None:
            existing = {f"{ctype}:{c}" for c in known.values()}
        else:
            cids = await run(render.user_channel_cids, camp, tpl, rows, sender)
            existing = await fanwrite.live_cids(conn, camp["app_id"], cids)
    batch: render.Batch = await run(render.users, camp, tpl, rows, sender, existing, test=test, known=known)
    return batch


def _track(camp: asyncpg.Record, sh: render.Shape, b: render.Batch, tracking: links.Tracking | None,
           test: bool, lits: tuple[str, ...]) -> None:
    """track_clicks: each recipient's links become its signed /c/ links (texts and
    attachments then go per row)."""
    if not camp["track_clicks"] or tracking is None:
        return
    texts, atts = links.track_rows(tracking, camp["app_id"], camp["id"], b.targets, b.texts, sh.text,
                                   sh.attachments, test=test, lits=lits)
    if texts is not None:
        b.texts, b.attachments = texts, atts


async def _render_one(
    conn: Tx, camp: Any, tpl: CampaignTemplates, rows: list[asyncpg.Record], sender: dict[str, Any],
    channels: bool, test: bool, tracking: links.Tracking | None, lits: tuple[str, ...],
) -> tuple[render.Batch, render.Shape]:
    sh = render.shape(camp, tpl, test=test)
    if (not channels and not test and camp["track_clicks"] and tracking is not None
            and "unsubscribe_url" not in str(camp["message_template"])):
        with batch_budget():  # rendered and tracked in one pass where it applies
            fused = render.tracked_users(camp, tpl, rows, sender, tracking, lits)
        if fused is not None:
            return fused, sh
    if channels:
        with batch_budget():
            batch = render.channels(camp, tpl, rows, sender)
    else:
        batch = await _render_users(conn, camp, tpl, rows, sender, test)
    if tracking is not None and not channels and "unsubscribe_url" in str(camp["message_template"]):
        # {{ unsubscribe_url }}: each user's signed /u/ link
        batch.texts = unsubscribe.fill(batch.texts, batch.targets, tracking.base, tracking.secret, camp["app_id"])
        batch.customs = unsubscribe.fill(batch.customs, batch.targets, tracking.base, tracking.secret, camp["app_id"])
    _track(camp, sh, batch, tracking, test, lits)
    return batch, sh


async def _render(
    conn: Tx, camp: asyncpg.Record, rows: list[asyncpg.Record], sender: dict[str, Any], *,
    channels: bool, test: bool, tracking: links.Tracking | None,
) -> tuple[render.Batch, render.Shape]:
    """Render a batch; with variants each recipient's variant (domain/variants.choose, or the
    winner once chosen) is rendered with that variant's templates and the parts merged into
    one batch."""
    # the links written in the whole template (all variants): one short token each, whose
    # URL the redirect finds in the stored template (domain/linkbatch)
    lits = links.literals(camp["message_template"]) if camp["track_clicks"] and tracking is not None else ()
    vs = (camp["message_template"] or {}).get("variants")
    if not vs:
        return await _render_one(conn, camp, templates_for(camp), rows, sender, channels, test, tracking, lits)
    groups: dict[str, list[asyncpg.Record]] = {v["id"]: [] for v in vs}
    won = camp["winner_variant"] if camp["winner_variant"] in groups else None  # everyone after the test
    chosen = [won] * len(rows) if won else variants.chooser(camp["id"], vs)([r["id"] for r in rows])
    for r, vid in zip(rows, chosen, strict=True):
        groups[vid].append(r)
    parts: list[tuple[str, render.Batch, render.Shape]] = []
    for v in vs:
        if not groups[v["id"]] and parts:
            continue
        mt = variants.template_of(camp["message_template"], v)
        cv = {**dict(camp), "message_template": mt}
        tpl = TEMPLATE_CACHE.get((camp["app_id"], camp["id"], v["id"]), camp["updated_at"], mt,
                                 camp["channel_template"])
        b, sh = await _render_one(conn, cv, tpl, groups[v["id"]], sender, channels, test, tracking, lits)
        parts.append((str(v["id"]), b, sh))
    return variants.merge(parts)


async def write_batch(
    conn: Tx, camp: asyncpg.Record, no: int, n: int, bounds: tuple[str | None, str], events: bool,
    tracking: links.Tracking | None = None, app_settings: dict[str, Any] | None = None,
    contended: bool = False, prefix: str | None = None,
) -> tuple[int, int, int, int, int]:
    """One batch, inside its transaction: (sent, errored, skipped, channels created, other open
    batches as this transaction saw them). The delivery policy (services/policy) filters a
    user audience's pending rows first: held ones are left pending, skipped ones get ledger
    rows with their reason."""
    sender = await sender_view(conn, camp)
    channels = camp["kind"] == "channel"
    if channels:
        rows = await fanwrite.pending_channels(conn, camp["app_id"], camp["id"], camp["sender_id"], *bounds)
    else:
        rows = await fanwrite.pending_users(conn, camp["app_id"], camp["id"], *bounds)
    pre = n - len(rows)  # recipients excluded before their batch ran
    w = camp["winner"]
    if w and camp["winner_variant"] is None:  # the test pass: the test audience only
        keep = [r for r in rows if variants.in_test(camp["id"], r["id"], w["test_fraction"])]
        if no >= camp["plan_batches"]:  # a release of its held ones (store/policy.add_release_batch)
            pre, n = 0, len(keep)
        else:
            n = n - (len(rows) - len(keep))
        rows = keep
    elif w and no >= camp["plan_batches"]:  # the winner's pass over the rest (or a release in it): all new
        pre, n = 0, len(rows)
    gate = None
    if not channels:
        gate = await policy.before(conn, camp, app_settings or {}, rows, bounds, no)
        rows, pre, n = gate.rows, max(pre, 0), n - gate.held  # held ones are neither counted nor done
    # only a contended redo can take a concurrent creator's channel (the first try fails on it)
    exact = contended and _reads_distinct_channel(camp)
    for attempt in range(RACE_TRIES):
        retry = exact and attempt < RACE_TRIES - 1  # the last try keeps what it wrote
        try:
            async with conn.transaction() if retry else contextlib.nullcontext():  # a savepoint
                batch, sh = await _render(conn, camp, rows, sender, channels=channels, test=False, tracking=tracking)
                if gate is not None:
                    batch.other.extend(gate.skipped)
                sent, errored, skipped, created, others, _ = await fanwrite.write(
                    conn, camp, no, sh, batch, n, events, sender, timefmt.fmt(timefmt.now()) or "",
                    pre=pre, capped_at=gate.at if gate is not None else None,
                    contended=contended, prefix=prefix, exact_ids=retry)
            return sent, errored, skipped, created, others
        except fanwrite.ChannelRace:
            continue  # rolled back: rendered again, the probe finds the channels that won
    raise AssertionError("unreachable: the last try does not raise ChannelRace")


# A batch whose 1:1 channel was created concurrently is rendered again: twice at most, then
# it keeps the text it has (a third concurrent creator of the same pairs in a row).
RACE_TRIES = 3


def _reads_distinct_channel(camp: asyncpg.Record) -> bool:
    """Templates that may read `{{ channel.* }}` of the 1:1 channels a batch creates: their
    text must name the channel the message lands in, the one that won a concurrent creation."""
    return (camp["kind"] != "channel" and bool(camp["create_channels"])
            and not (camp["channel_template"] or {}).get("id") and "channel" in str(camp["message_template"]))


async def send_test(
    conn: Tx, camp: asyncpg.Record, user_ids: list[str], events: bool, tracking: links.Tracking | None = None,
) -> list[dict[str, Any]]:
    """Send the rendered message to these users now, as the campaign would (same channels,
    members and message shape, plus campaign_test: true), with no ledger rows, counters or
    status change. Returns one entry per distinct user, in order."""
    sender = await sender_view(conn, camp)
    rows = await fanwrite.users_by_ids(conn, camp["app_id"], list(dict.fromkeys(user_ids)))
    batch, sh = await _render(conn, camp, rows, sender, channels=False, test=True, tracking=tracking)
    *_, sent_rows = await fanwrite.write(
        conn, camp, -1, sh, batch, len(rows), events, sender,
        timefmt.fmt(timefmt.now()) or "", test=True)
    by: dict[str, dict[str, Any]] = {}
    for target, cid, mid, text in sent_rows or []:
        by[target] = {"user_id": target, "status": "sent", "channel_cid": cid, "message_id": mid, "text": text}
    for target, _, _, status, error in batch.other:
        assert target is not None
        by[target] = {"user_id": target, "status": status, "error": error}
    return [by[r["id"]] for r in rows]

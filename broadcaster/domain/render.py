"""The one campaign renderer: recipient + campaign -> message, channel, members, ledger row.

Every audience kind goes through here (user segments and user_ids, channel segments, every
sender_mode, test sends), and store/fanwrite.write turns the result into rows in one
statement. A batch is column-wise; a column left as None means "the same for every row"
(constant text or custom data) or "computed in SQL" (the distinct 1:1 channel: found by member
pair, or a new time-ordered id), so Python ships only what it alone can compute.

Template context: `sender`; `channel` (id, type, cid, custom and its fields, team for existing
channels); for user audiences `receiver`/`user` = the recipient; for channel audiences
`receiver`/`user` only in 1:1 channels (two members, one of them the sender: SPEC 5), else
absent (renders empty).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from broadcaster import ids as idgen
from broadcaster.domain import fastrender, links, trackfast, unsubscribe
from broadcaster.templating import CampaignTemplates, RenderError, user_view
from broadcaster.validate import ID_RE

Row = Any  # a mapping-like row: asyncpg.Record or dict (the domain does not import asyncpg)


@dataclass
class Batch:
    """Rows of one rendered batch. `targets` are the sent rows' target ids (user ids or cids);
    `receivers` None means "the target is the receiving user" (user audiences); `chids` are
    channel ids of the template's type (user audiences; None, or None entries: the 1:1 channel,
    found or named in SQL) or
    full cids (channel audiences)."""

    channel_mode: bool = False
    targets: list[str] = field(default_factory=list)
    receivers: list[str | None] | None = None
    chids: list[str | None] | None = None
    texts: list[str] | None = None
    customs: list[Any] | None = None
    ccustoms: list[Any] | None = None
    attachments: list[Any] | None = None  # per row (tracked links); None: Shape.attachments
    variants: list[str] | None = None  # per row: the A/B variant (domain/variants)
    # with variants whose custom is the same for all their rows: that custom of each variant
    # (the write picks it by the row's variant) instead of a custom per row
    variant_customs: dict[str, Any] | None = None
    # skipped/errored: [target, user, cid, status, error]
    other: list[list[str | None]] = field(default_factory=list)
    errored: int = 0

    def skip(self, target: str, user: str | None, cid: str | None, reason: str) -> None:
        self.other.append([target, user, cid, "skipped", reason])

    def error(self, target: str, user: str | None, cid: str | None, message: str) -> None:
        self.other.append([target, user, cid, "errored", message])
        self.errored += 1

    def add(
        self, target: str, *, receiver: str | None = None, chid: str = "", text: str | None = None,
        custom: Any = None, ccustom: Any = None,
    ) -> None:
        """One sent row; a value goes to its column only where the column is shipped."""
        self.targets.append(target)
        if self.receivers is not None:
            self.receivers.append(receiver)
        if self.chids is not None:
            self.chids.append(chid)
        if self.texts is not None:
            self.texts.append(text)  # type: ignore[arg-type]
        if self.customs is not None:
            self.customs.append(custom)
        if self.ccustoms is not None:
            self.ccustoms.append(ccustom)


@dataclass(frozen=True)
class Shape:
    """Per-campaign constants of the write."""

    ctype: str
    team: str | None
    text: str
    custom: Any
    ccustom: Any
    attachments: Any
    members: list[tuple[str, str, Any]]  # (user, role, custom): every new channel's fixed members
    include_sender: bool  # sender_mode include: the sender joins every channel used
    distinct: bool = True  # user audiences send into the 1:1 distinct channel (no channel_template.id)


def message_custom(camp: Row, custom: Any, test: bool) -> Any:
    """A message's stored custom data: the rendered custom, poll_id, and the test-send flag."""
    out = dict(custom) if isinstance(custom, Mapping) else {}
    poll = (camp["message_template"] or {}).get("poll_id")
    if poll:
        out["poll_id"] = poll
    if test:
        out["campaign_test"] = True
    return out


def shape(camp: Row, tpl: CampaignTemplates, *, test: bool = False) -> Shape:
    """Fixed members of a new channel: the sender (unless excluded), then
    channel_template.members (default role), then members_template (overriding)."""
    ct = camp["channel_template"] or {}
    rows: dict[str, tuple[str, Any]] = {}
    if camp["sender_mode"] != "exclude":
        rows[camp["sender_id"]] = ("channel_member", {})
    for m in ct.get("members") or []:
        rows.setdefault(m, ("channel_member", {}))
    for m in ct.get("members_template") or []:
        rows[m["user_id"]] = (m.get("channel_role") or "channel_member", m.get("custom") or {})
    mt = camp["message_template"]
    return Shape(
        ctype=ct.get("type") or "messaging", team=ct.get("team"), text=tpl.text.source,
        custom=message_custom(camp, tpl.custom.value, test), ccustom=tpl.channel_custom.value,
        attachments=mt.get("attachments") or [], members=[(u, r, c) for u, (r, c) in rows.items()],
        include_sender=camp["sender_mode"] == "include", distinct=tpl.channel_id is None,
    )


def mentions_channel(tpl: CampaignTemplates) -> bool:
    """Whether any text/custom template can read `channel` (else its context is not built)."""
    parts = [tpl.text, *(t for _, t in tpl.custom.parts)]
    return any("channel" in t.source for t in parts)


def channel_type(camp: Row) -> str:
    return (camp["channel_template"] or {}).get("type") or "messaging"


def user_channel_cids(camp: Row, tpl: CampaignTemplates, rows: Sequence[Row], sender: dict[str, Any]) -> list[str]:
    """The cids a user batch would send into with channel_template.id (to probe which exist
    without create_channels; distinct channels are probed by member pair instead)."""
    probe = users(camp, tpl, rows, sender, None)
    return sorted({f"{channel_type(camp)}:{c}" for c in probe.chids or []})


def opted_out(r: Row) -> bool:
    """The user field `campaigns_opt_out: true` (set through the user endpoints or /u/)."""
    custom = r["custom"]
    return isinstance(custom, dict) and custom.get("campaigns_opt_out") is True


def users(
    camp: Row, tpl: CampaignTemplates, rows: Sequence[Row], sender: dict[str, Any],
    existing: set[str] | None, *, test: bool = False, known: Mapping[str, str] | None = None,
) -> Batch:
    """A batch of a user audience. rows: {id, found, name, role, teams, language, custom};
    existing: live channel cids (None = create_channels); known: receiver -> id of its
    distinct channel with the sender, where one exists (needed when ids are shipped: without
    create_channels, or when templates read `channel`; others get new time-ordered ids)."""
    ctype = channel_type(camp)
    need_channel = mentions_channel(tpl)
    parts = fastrender.plan(tpl, sender) if fastrender.applies(tpl, existing, need_channel) else None
    if parts is not None:
        return _plain_users(tpl, rows, parts, test)
    ship_chid = tpl.channel_id is not None or existing is not None or need_channel
    known = known or {}
    fresh = idgen.message_id_prefix() if ship_chid and tpl.channel_id is None else ""
    text_const = tpl.text.compiled is None
    cc_const = tpl.channel_custom.constant
    cu_const = tpl.custom.constant
    b = Batch(chids=[] if ship_chid else None, texts=None if text_const else [],
              customs=None if cu_const else [], ccustoms=None if cc_const else [])
    for r in rows:
        uid = r["id"]
        if not r["found"]:
            b.skip(uid, uid, None, "user_not_found")
            continue
        if not test and opted_out(r):  # SPEC 5B: a test send is explicit, so it still goes
            b.skip(uid, uid, None, "opted_out")
            continue
        u = user_view(r)
        ctx: dict[str, Any] = {"sender": sender, "receiver": u, "user": u, "unsubscribe_url": unsubscribe.MARK}
        try:
            chid = ""
            if tpl.channel_id is not None:
                chid = tpl.channel_id.render({**ctx, "channel": {"type": ctype}})
                if not ID_RE.match(chid):
                    raise RenderError(f"channel_template.id rendered an invalid channel id {chid[:80]!r}")
            elif ship_chid:
                chid = known.get(uid) or idgen.new_distinct_id(fresh, len(b.targets))
            if existing is not None:
                c = f"{ctype}:{chid}"
                if c not in existing:
                    b.skip(uid, uid, c, "channel_not_found")
                    continue
            ccustom = tpl.channel_custom.value if cc_const else tpl.channel_custom.render(ctx)
            if need_channel:
                channel = {"id": chid, "type": ctype, "cid": f"{ctype}:{chid}", "custom": ccustom}
                ctx["channel"] = {**ccustom, **channel} if isinstance(ccustom, dict) else channel
            text = None if text_const else tpl.text.render(ctx)
            custom = None if cu_const else message_custom(camp, tpl.custom.render(ctx), test)
        except RenderError as e:
            b.error(uid, uid, None, str(e))
            continue
        b.add(uid, chid=chid, text=text, custom=custom, ccustom=ccustom)
    return b


def _sent(rows: Sequence[Row], test: bool, b: Batch) -> list[Row]:
    """The rows that are sent, the others skipped into b as users() skips them."""
    if not test and all([r["found"] and not opted_out(r) for r in rows]):
        return list(rows)  # the usual batch: one pass, no branch per row
    sent = []
    for r in rows:
        uid = r["id"]
        if not r["found"]:
            b.skip(uid, uid, None, "user_not_found")
        elif not test and opted_out(r):
            b.skip(uid, uid, None, "opted_out")
        else:
            sent.append(r)
    return sent


def _plain_users(tpl: CampaignTemplates, rows: Sequence[Row], parts: list[Any], test: bool) -> Batch:
    """users() for fastrender's case: the same skips, rows and texts."""
    b = Batch(texts=[])
    sent = _sent(rows, test, b)
    cap = tpl.text.cap
    return _filled(b, tpl, sent, [t if len(t) <= cap else None for t in fastrender.texts(parts, sent)])


def _filled(b: Batch, tpl: CampaignTemplates, sent: Sequence[Row], texts: Sequence[str | None]) -> Batch:
    """b with each sent row's text (None: over the text's cap, an error row)."""
    cap, name = tpl.text.cap, tpl.text.name
    for r, text in zip(sent, texts, strict=True):
        if text is None:
            b.error(r["id"], r["id"], None, f"template_budget: {name} output exceeds {cap} characters")
            continue
        b.targets.append(r["id"])
        b.texts.append(text)  # type: ignore[union-attr]
    return b


def tracked_users(
    camp: Row, tpl: CampaignTemplates, rows: Sequence[Row], sender: dict[str, Any], tracking: links.Tracking,
    lits: tuple[str, ...],
) -> Batch | None:
    """users() and links.track_rows in one pass for fastrender's case (domain/trackfast): the
    texts with their links tracked, or None where that does not apply (the caller renders and
    tracks the batch the general way)."""
    if not camp["create_channels"] or not fastrender.applies(tpl, None, mentions_channel(tpl)):
        return None
    if links.has_links("", (camp["message_template"] or {}).get("attachments")):
        return None  # attachments tracked per row: links.track_rows
    const = tpl.text.compiled is None
    parts: list[Any] | None = [tpl.text.source] if const else fastrender.plan(tpl, sender)
    if parts is None or any(isinstance(p, str) and unsubscribe.MARK in p for p in parts):
        return None  # {{ unsubscribe_url }} is filled in (and then tracked) after rendering
    ops = trackfast.plan(parts, tracking.click_prefix)
    if ops is None:
        return None
    b = Batch(texts=[])
    sent = _sent(rows, False, b)
    cap = tpl.text.cap
    # a constant text is not rendered, so not held to the cap either
    out, general = trackfast.texts(ops, trackfast.fields_of(parts), sent, tracking, camp["app_id"], camp["id"],
                                   lits, len(tpl.text.source) if const else cap)
    if general:  # fields that could start or end a link: these rows' whole texts are searched
        rest = [sent[i] for i in general]
        done, _ = links.track_rows(tracking, camp["app_id"], camp["id"], [r["id"] for r in rest],
                                   fastrender.texts(parts, rest), "", None, lits=lits)
        for i, done_text in zip(general, done or [], strict=True):
            out[i] = done_text
    return _filled(b, tpl, sent, out)


def channels(camp: Row, tpl: CampaignTemplates, rows: Sequence[Row], sender: dict[str, Any]) -> Batch:
    """A batch of a channel audience. rows: {id (cid), found, type, chid, team, ccustom,
    rid (the other member of a 1:1 channel with the sender, if any), name, role, teams,
    language, custom}."""
    text_const = tpl.text.compiled is None
    cu_const = tpl.custom.constant
    b = Batch(channel_mode=True, receivers=[], chids=[], texts=None if text_const else [],
              customs=None if cu_const else [])
    for r in rows:
        c = r["id"]
        if not r["found"]:
            b.skip(c, None, c, "channel_not_found")
            continue
        cc = r["ccustom"] or {}
        channel = {**cc, "id": r["chid"], "type": r["type"], "cid": c, "custom": cc, "team": r["team"]}
        ctx: dict[str, Any] = {"sender": sender, "channel": channel}
        rid = r["rid"]
        if rid is not None:
            ctx["receiver"] = ctx["user"] = user_view({**r, "id": rid})
        try:
            text = None if text_const else tpl.text.render(ctx)
            custom = None if cu_const else message_custom(camp, tpl.custom.render(ctx), False)
        except RenderError as e:
            b.error(c, rid, c, str(e))
            continue
        b.add(c, receiver=rid, chid=c, text=text, custom=custom)
    return b

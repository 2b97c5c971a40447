"""A campaign's interactions by type, keyset-paged, and its funnel timeline (SPEC 5C).

Each type pages along an index it already has: sent and read along the ledger's primary key
(target order: the ledger has no time index, and adding one would slow the fan-out's
write), clicked along campaign_clicks' primary key and converted along conversions_campaign
(both in time order)."""

from __future__ import annotations

from typing import Any

from broadcaster import timefmt
from broadcaster.analytics import GRANULARITIES
from broadcaster.store import occurrence_views
from broadcaster.store.ledger import Conn

# position kinds per type (cursors.typed_position)
KINDS = {"sent": ["text"], "read": ["text"], "clicked": ["time", "text"], "converted": ["time", "text"]}


def kinds(kind: str, family: list[str] | None) -> list[str]:
    """A repeating campaign's sent and read pages also carry the occurrence of the row."""
    return ["text", "text"] if family is not None and kind in ("sent", "read") else KINDS[kind]

_LEDGER = (
    "SELECT r.target_id, r.user_id, r.channel_cid, r.message_id, r.variant_id, r.{at} AS at FROM campaign_recipients r"
    " WHERE r.app_id = $1 AND r.campaign_id = $2 AND r.status IN ({statuses}) {keyset}"
    " ORDER BY r.target_id {dir} LIMIT {limit}"
)
_CLICKS = (
    "SELECT c.at, c.id::text AS key, c.target_id, c.link_no, c.url, c.first, r.user_id, r.channel_cid, r.message_id,"
    " r.variant_id"
    " FROM campaign_clicks c LEFT JOIN campaign_recipients r ON r.app_id = c.app_id"
    " AND r.campaign_id = c.campaign_id AND r.target_id = c.target_id"
    " WHERE c.app_id = $1 AND c.campaign_id {camp} {keyset} ORDER BY c.at {dir}, c.id {dir} LIMIT {limit}"
)
_CONVERSIONS = (
    "SELECT v.created_at AS at, v.id AS key, v.user_id, v.event, v.value, v.currency, v.message_id,"
    " (SELECT r.variant_id FROM campaign_recipients r WHERE r.app_id = v.app_id AND r.campaign_id = v.campaign_id"
    "  AND r.target_id = v.user_id) AS variant_id"
    " FROM conversions v WHERE v.app_id = $1 AND v.campaign_id {camp} {keyset}"
    " ORDER BY v.created_at {dir}, v.id {dir} LIMIT {limit}"
)


async def page(
    conn: Conn, app_id: int, cid: str, kind: str, position: list[Any] | None, backwards: bool, limit: int,
    family: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Up to `limit` interactions after `position` (before it, nearest first, when backwards);
    each has its `pos` (the cursor position) besides the wire fields. `family`: a repeating
    campaign's members (occurrence_views.family), whose interactions are all listed."""
    d, op = ("DESC", "<") if backwards else ("ASC", ">")
    args: list[Any] = [app_id, cid if family is None else family]
    if kind in ("sent", "read") and family is not None:
        rows = await occurrence_views.ledger_interactions(conn, app_id, family, kind, position, backwards, limit)
        return [_ledger_view(r, kind, r["campaign_id"]) for r in rows]
    if kind in ("sent", "read"):
        keyset = ""
        if position is not None:
            keyset, args = f"AND r.target_id {op} $3", [*args, position[0]]
        sql = _LEDGER.format(at="sent_at" if kind == "sent" else "read_at",
                             statuses="'sent', 'read'" if kind == "sent" else "'read'",
                             keyset=keyset, dir=d, limit=int(limit))
        return [_ledger_view(r, kind) for r in await conn.fetch(sql, *args)]
    # one campaign: `= $2` keeps its index order (an array would need a sort of all its rows)
    camp = "= $2" if family is None else "= ANY($2::text[])"
    if kind == "clicked":
        keyset = f"AND (c.at, c.id) {op} ($3, $4::text::bigint)" if position is not None else ""
        sql = _CLICKS.format(keyset=keyset, dir=d, limit=int(limit), camp=camp)
    else:
        keyset = f"AND (v.created_at, v.id) {op} ($3, $4)" if position is not None else ""
        sql = _CONVERSIONS.format(keyset=keyset, dir=d, limit=int(limit), camp=camp)
    if position is not None:
        args += position
    rows = await conn.fetch(sql, *args)
    return [_click_view(r) if kind == "clicked" else _conversion_view(r) for r in rows]


def _base(kind: str, user_id: str | None, at: Any, message_id: str | None) -> dict[str, Any]:
    return {"user_id": user_id, "type": kind, "at": timefmt.fmt(at), "message_id": message_id}


def _ledger_view(r: Any, kind: str, member: str | None = None) -> dict[str, Any]:
    out = _base(kind, r["user_id"], r["at"], r["message_id"])
    if r["variant_id"] is not None:
        out["variant"] = r["variant_id"]
    if r["channel_cid"] is not None:
        out["data"] = {"channel_cid": r["channel_cid"]}
    if member is not None:  # the occurrence campaign the message belongs to
        out.setdefault("data", {})["campaign_id"] = member
    out["pos"] = [r["target_id"]] if member is None else [r["target_id"], member]
    return out


def _click_view(r: Any) -> dict[str, Any]:
    out = _base("clicked", r["user_id"] or r["target_id"], r["at"], r["message_id"])
    if r["variant_id"] is not None:
        out["variant"] = r["variant_id"]
    out["data"] = {"link": r["link_no"], "url": r["url"], "first": r["first"]}
    if r["channel_cid"] is not None:
        out["data"]["channel_cid"] = r["channel_cid"]
    out["pos"] = [timefmt.fmt(r["at"]), r["key"]]
    return out


def _conversion_view(r: Any) -> dict[str, Any]:
    out = _base("converted", r["user_id"], r["at"], r["message_id"])
    if r["variant_id"] is not None:
        out["variant"] = r["variant_id"]
    data: dict[str, Any] = {"id": r["key"], "event": r["event"]}
    if r["value"] is not None:
        data.update(value=float(r["value"]), currency=r["currency"])
    out["data"] = data
    out["pos"] = [timefmt.fmt(r["at"]), r["key"]]
    return out


async def timeline(
    conn: Conn, app_id: int, cid: str, granularity: str, family: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Buckets of sent and errored (batches done in it), read, clicked (recipients' first
    clicks) and clicks, converted (users' first conversions) and conversions; over the
    family's members for a repeating campaign."""
    assert granularity in GRANULARITIES
    rows = await conn.fetch(
        "SELECT at, sum(sent) AS sent, sum(read) AS read, sum(errored) AS errored, sum(clicked) AS clicked,"
        " sum(clicks) AS clicks, sum(converted) AS converted, sum(conversions) AS conversions FROM ("
        " SELECT date_trunc($3, done_at, 'UTC') AS at, sent, 0 AS read, errored, 0 AS clicked, 0 AS clicks,"
        "   0 AS converted, 0 AS conversions"
        " FROM campaign_batches WHERE app_id = $1 AND campaign_id = ANY($2::text[]) AND done"
        " UNION ALL SELECT date_trunc($3, minute, 'UTC'), 0, read, 0, 0, 0, users_converted, conversions"
        " FROM campaign_minutes WHERE app_id = $1 AND campaign_id = ANY($2::text[])"
        " UNION ALL SELECT date_trunc($3, at, 'UTC'), 0, 0, 0, count(*) FILTER (WHERE first), count(*), 0, 0"
        " FROM campaign_clicks WHERE app_id = $1 AND campaign_id = ANY($2::text[]) GROUP BY 1"
        ") t GROUP BY at ORDER BY at", app_id, family or [cid], granularity,
    )
    keys = ("sent", "read", "clicked", "clicks", "converted", "conversions", "errored")
    return [{"at": timefmt.fmt(r["at"]), **{k: int(r[k]) for k in keys}} for r in rows]

"""Campaign rows: CRUD, query, state transitions (with their outbox events), the JSON view."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from broadcaster import lifecycle, timefmt
from broadcaster.analytics import funnel_stats
from broadcaster.domain import policy, series, variants
from broadcaster.errors import conflict, not_found
from broadcaster.store import campaign_view, ledger, outbox, purges
from broadcaster.store.ledger import Conn, Tx

# A queued batch job not started by then is presumed lost (its worker died after arq handed
# it over, before the job took its running lease) and is enqueued again under a new job id.
# Short on purpose: a duplicate of a still-queued job is harmless (the batch row lock and
# done flag make the second one a no-op), while a long lease delays recovery after a crash.
QUEUED_LEASE_S = 30

COLUMNS = (
    "app_id, id, name, description, status, segment_ids, user_ids, sender_id, sender_mode,"
    " message_template, create_channels, channel_template, skip_push, skip_webhook,"
    " scheduled_for, stop_at, created_at, updated_at, kind, started_at, completed_at,"
    " plan_after, plan_batches, planned, recipients_total, sender_visibility, show_channels, track_clicks,"
    " type, schedule, parent_id, run_no, next_run_at, runs_started, trigger, delay, once_per_user,"
    " times_triggered, winner, winner_phase, winner_at, winner_variant,"
    " send_in_local_time, quiet_hours, ignore_frequency_caps, local_send_at"
)
# what a recurring run copies from its parent
EDITABLE_CONTENT = (
    "name", "description", "segment_ids", "user_ids", "sender_id", "sender_mode",
    "message_template", "create_channels", "channel_template", "skip_push", "skip_webhook",
    "sender_visibility", "show_channels", "track_clicks", "winner", "quiet_hours", "ignore_frequency_caps",
)
EDITABLE = (*EDITABLE_CONTENT, *series.EDITABLE, "send_in_local_time")


async def user_exists(conn: Conn, app_id: int, user_id: str) -> bool:
    return bool(await conn.fetchval(
        "SELECT 1 FROM users WHERE app_id = $1 AND id = $2 AND deleted_at IS NULL", app_id, user_id
    ))


async def create(conn: Conn, app_id: int, cid: str, data: dict[str, Any]) -> asyncpg.Record:
    cols = ["app_id", "id", *EDITABLE]
    vals = [app_id, cid, *(data[k] for k in EDITABLE)]
    ph = ", ".join(f"${i + 1}" for i in range(len(cols)))
    try:
        r = await conn.fetchrow(
            f"INSERT INTO campaigns ({', '.join(cols)}) VALUES ({ph}) RETURNING {COLUMNS}", *vals
        )
        assert r is not None
        return r
    except asyncpg.UniqueViolationError:
        raise conflict(f"campaign {cid!r} already exists") from None
    except asyncpg.PostgresError as e:
        if e.sqlstate == purges.PURGING:
            raise conflict(f"campaign {cid!r} was deleted and its recipients are still being removed:"
                           " retry in a moment or use another id") from None
        raise


async def get(conn: Conn, app_id: int, cid: str, *, lock: str = "") -> asyncpg.Record:
    """lock: "" | "UPDATE" | "NO KEY UPDATE" | "KEY SHARE". Batches hold KEY SHARE until they
    commit: stop/pause/exclude (UPDATE) wait for them, plain updates of counters do not."""
    suffix = f" FOR {lock}" if lock else ""
    r = await conn.fetchrow(
        f"SELECT {COLUMNS} FROM campaigns WHERE app_id = $1 AND id = $2{suffix}", app_id, cid
    )
    if r is None:
        raise not_found(f"campaign {cid!r}")
    return r


async def update(conn: Conn, app_id: int, cid: str, data: dict[str, Any]) -> asyncpg.Record:
    sets = ", ".join(f"{k} = ${i + 3}" for i, k in enumerate(EDITABLE))
    r = await conn.fetchrow(
        f"UPDATE campaigns SET {sets}, updated_at = now() WHERE app_id = $1 AND id = $2"
        f" RETURNING {COLUMNS}", app_id, cid, *(data[k] for k in EDITABLE),
    )
    if r is None:
        raise not_found(f"campaign {cid!r}")
    return r


async def delete(conn: Tx, app_id: int, ids: Sequence[str], inline_max: int = purges.INLINE_MAX) -> bool:
    """Delete campaigns locked FOR UPDATE (one, or a family's runs or occurrences in one go);
    True when their rows went with them, False when a large set's per-recipient rows are left
    to the worker's purge job (store/purges.py)."""
    large = await purges.is_large(conn, app_id, ids, inline_max)
    if large:
        await purges.queue(conn, app_id, ids)
    else:
        await purges.delete_inline(conn, app_id, ids)
    # the tenant's conversions stay (their ids still de-duplicate), unattributed: a later
    # campaign of the same id must not inherit them
    await conn.execute("UPDATE conversions SET campaign_id = NULL, message_id = NULL"
                       " WHERE app_id = $1 AND campaign_id = ANY($2::text[])", app_id, list(ids))
    await conn.execute("DELETE FROM campaigns WHERE app_id = $1 AND id = ANY($2::text[])", app_id, list(ids))
    return not large


async def query(
    conn: Conn, app_id: int, where: str, params: list[Any], order: list[tuple[str, int]], limit: int,
) -> list[asyncpg.Record]:
    """`where` is compiled filter/keyset SQL over campaign columns with params from $2 on."""
    order_sql = ", ".join(f"{col} {'ASC' if d == 1 else 'DESC'}" for col, d in order)
    return await conn.fetch(
        f"SELECT {COLUMNS} FROM campaigns WHERE app_id = $1 AND ({where})"
        f" ORDER BY {order_sql} LIMIT {int(limit)}", app_id, *params,
    )


async def set_status(
    conn: Tx, row: asyncpg.Record, action: str, *, status: str | None = None,
    extra_sql: str = "", extra: tuple[Any, ...] = (), event: str | None = None,
) -> asyncpg.Record:
    """Apply a lifecycle action to a row locked FOR UPDATE; writes its campaign.* event."""
    new = status or lifecycle.after(action, row["status"])
    lifecycle.check(action, row["status"])
    r = await conn.fetchrow(
        f"UPDATE campaigns SET status = $3, updated_at = now(){extra_sql}"
        f" WHERE app_id = $1 AND id = $2 RETURNING {COLUMNS}",
        row["app_id"], row["id"], new, *extra,
    )
    assert r is not None
    if new == "stopped":  # held recipients (0100_policy.sql) of a stopped campaign are never released
        await conn.execute("DELETE FROM campaign_held WHERE app_id = $1 AND campaign_id = $2", row["app_id"], row["id"])
    if event:
        await add_event(conn, r, event)
    return r


async def add_event(conn: Tx, r: asyncpg.Record, event: str) -> None:
    stats = await ledger.stats_many(conn, r["app_id"], [r["id"]])
    rel = (await campaign_view.related(conn, r["app_id"], [r], user_limit=None))[r["id"]]
    payload = {"type": event, "campaign": view(r, stats.get(r["id"]), **rel),
               "created_at": timefmt.fmt(timefmt.now()), "custom": {}}
    await outbox.add(conn, r["app_id"], event, payload, campaign_id=r["id"])  # type: ignore[arg-type]


async def start(
    conn: Tx, row: asyncpg.Record, kind: str, scheduled_for: datetime | None,
    stop_at: datetime | None, local_send_at: datetime | None = None,
) -> asyncpg.Record:
    """Start (or schedule) a draft locked FOR UPDATE, leaving its audience to the planner that
    took its snapshot before this (services/planning.py). local_send_at: send_in_local_time's
    wall-clock time (services/policy.local_start)."""
    lifecycle.check("start", row["status"])
    status = lifecycle.start_status(timefmt.now(), scheduled_for)
    r = await set_status(
        conn, row, "start", status=status,
        extra_sql=", kind = $4, scheduled_for = $5, stop_at = $6, local_send_at = $7"
        + (", started_at = now()" if status == "in_progress" else ""),
        extra=(kind, scheduled_for, stop_at, local_send_at),
    )
    if status == "in_progress":
        await add_event(conn, r, "campaign.started")
    return r


async def fire(conn: Tx, row: asyncpg.Record) -> asyncpg.Record:
    """A scheduled campaign whose time has come: in_progress, its audience left to the planner
    that took its snapshot before this (services/planning.fire)."""
    r = await set_status(conn, row, "fire", extra_sql=", started_at = now()")
    await add_event(conn, r, "campaign.started")
    return r


async def try_complete(conn: Tx, app_id: int, cid: str) -> bool:
    """Complete the campaign if planning finished and every batch is done (idempotent)."""
    async with conn.transaction():
        r = await conn.fetchrow(
            f"UPDATE campaigns SET status = 'completed', completed_at = now(), updated_at = now()"
            f" WHERE app_id = $1 AND id = $2 AND status = 'in_progress' AND planned"
            f" AND (winner IS NULL OR winner_phase = 'sending')"  # an A/B test's first pass is not the end
            f" AND NOT EXISTS (SELECT 1 FROM campaign_held h WHERE h.app_id = $1 AND h.campaign_id = $2)"
            f" AND NOT EXISTS (SELECT 1 FROM campaign_batches b WHERE b.app_id = $1"
            f" AND b.campaign_id = $2 AND NOT b.done) RETURNING {COLUMNS}", app_id, cid,
        )
        if r is None:
            return False
        await add_event(conn, r, "campaign.completed")
        return True


async def live_apps(conn: Conn) -> set[int]:
    """Apps with a campaign in progress (the partial index on live campaigns serves it)."""
    rows = await conn.fetch(
        "SELECT DISTINCT app_id FROM campaigns WHERE status = 'in_progress'")
    return {int(r[0]) for r in rows}


async def due(conn: Conn) -> list[asyncpg.Record]:
    """Live campaigns for the 1 s tick: scheduled starts and stop_at that are due, and runs."""
    return await conn.fetch(
        "SELECT app_id, id, status, type, planned, scheduled_for <= now() AS start_due,"
        " stop_at <= now() AS stop_due FROM campaigns"
        " WHERE status IN ('scheduled', 'in_progress', 'paused')"
    )


def view(
    r: asyncpg.Record, stats: dict[str, Any] | None, *, segments: list[dict[str, Any]] | None = None,
    sender: dict[str, Any] | None = None, users: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The hosted API's CampaignResponse plus our stats; `segments` (objects), `sender` (the
    user object) and `users` (a page of user objects) are fetched by the caller
    (api/campaign_view.py) and omitted from webhook event bodies when not given."""
    s = stats or {}
    now = timefmt.now()
    sent = int(s.get("sent", 0))
    users_sent = int(s.get("users_sent", sent))  # distinct over a repeating campaign's occurrences
    related: dict[str, Any] = {}
    if segments is not None:
        related["segments"] = segments
    if sender is not None:
        related["sender"] = sender
    if users is not None:
        related["users"] = users
    return {
        "id": r["id"], "name": r["name"], "description": r["description"], "status": r["status"],
        "segment_ids": list(r["segment_ids"]), "user_ids": list(r["user_ids"]),
        "sender_id": r["sender_id"], "sender_mode": r["sender_mode"],
        "sender_visibility": r["sender_visibility"], "show_channels": r["show_channels"],
        "track_clicks": r["track_clicks"], "winner": r["winner"], **related,
        "message_template": r["message_template"], "create_channels": r["create_channels"],
        "channel_template": r["channel_template"], "skip_push": r["skip_push"],
        "skip_webhook": r["skip_webhook"], "scheduled_for": timefmt.fmt(r["scheduled_for"]),
        "stop_at": timefmt.fmt(r["stop_at"]), "created_at": timefmt.fmt(r["created_at"]),
        "updated_at": timefmt.fmt(r["updated_at"]), **series.view_fields(r), **policy.view_fields(r),
        "stats": {
            "progress": lifecycle.progress(
                int(s.get("processed", 0)), int(r["recipients_total"]), r["planned"], r["status"]),
            "stats_started_at": timefmt.fmt(r["started_at"]),
            "stats_completed_at": timefmt.fmt(r["completed_at"]),
            "stats_messages_sent": sent,
            "stats_channels_created": int(s.get("channels_created", 0)),
            "stats_users_sent": users_sent,
            "stats_users_read": int(s.get("read", 0)),
            "stats_messages_errored": int(s.get("errored", 0)),
            "stats_recipients_skipped": int(s.get("skipped", 0)),
            "stats_recipients_total": int(s.get("recipients_total", r["recipients_total"])),
            "stats_send_rate": lifecycle.send_rate(sent, r["started_at"], r["completed_at"] or now),
            **funnel_stats(s, users_sent), **series.stats_fields(r),
            **variants.winner_stats(r["winner"], r["winner_phase"], r["winner_variant"]),
        },
    }

"""Per-member state of channels: hidden, archived, pinned, custom, and a campaign's
sender_visibility / show_channels over a batch's channels."""

from __future__ import annotations

from typing import Any

import asyncpg

from broadcaster.store.channels import Conn, Tx
from broadcaster.store.users import user_cols

MEMBER_SELECT = f"""
SELECT m.*, {user_cols("u", "u_")} FROM members m
LEFT JOIN users u ON u.app_id = m.app_id AND u.id = m.user_id
WHERE m.app_id = $1 AND m.cid = $2 AND m.user_id = $3
"""


async def set_hidden(conn: Conn, app_id: int, cid: str, user_id: str, hidden: bool) -> bool:
    """Hide or show the channel for one member; False when the user is not a member."""
    status = await conn.execute(
        "UPDATE members SET hidden = $4, updated_at = now() WHERE app_id = $1 AND cid = $2 AND user_id = $3",
        app_id, cid, user_id, hidden,
    )
    return status != "UPDATE 0"


async def update_member(
    conn: Conn, app_id: int, cid: str, user_id: str, *, archived: bool | None, pinned: bool | None,
    custom_set: dict[str, Any], custom_unset: list[str],
) -> asyncpg.Record | None:
    """The member partial update; None when the user is not a member. archived/pinned: True
    stamps now (kept when already set), False clears, None leaves it."""
    found = await conn.fetchval(
        """
        UPDATE members SET
            archived_at = CASE WHEN $4::boolean IS NULL THEN archived_at
                               WHEN $4 THEN COALESCE(archived_at, now()) END,
            pinned_at = CASE WHEN $5::boolean IS NULL THEN pinned_at
                             WHEN $5 THEN COALESCE(pinned_at, now()) END,
            custom = (custom - $7::text[]) || $6::jsonb,
            updated_at = now()
        WHERE app_id = $1 AND cid = $2 AND user_id = $3 RETURNING true
        """,
        app_id, cid, user_id, archived, pinned, custom_set, custom_unset,
    )
    return await conn.fetchrow(MEMBER_SELECT, app_id, cid, user_id) if found else None


def member_state_sql(user_param: str, state: str, wanted: bool) -> str:
    """A QueryChannels condition on the channels table: `user_param`'s member row is (or is
    not) hidden / archived / pinned. Not a member counts as not hidden, archived or pinned."""
    column = {"hidden": "m.hidden", "archived": "m.archived_at IS NOT NULL", "pinned": "m.pinned_at IS NOT NULL"}[state]
    exists = (f"EXISTS (SELECT 1 FROM members m WHERE m.app_id = channels.app_id AND m.cid = channels.cid"
              f" AND m.user_id = {user_param} AND {column})")
    return exists if wanted else f"NOT {exists}"


# A member update over a batch's channels, as one primary-key probe per channel: the
# OFFSET 0 fence keeps the lateral lookup on (app_id, cid) alone, so the planner cannot walk
# the sender's member rows instead (it is in every channel of its campaigns: that plan took
# 54 s for one 2,000-channel batch of a 50,000-recipient campaign, this one ~30 ms), and
# hash/merge joins and sequential scans are priced out for the statement.
_EACH_MEMBER = (
    " FROM (SELECT x.ctid AS t FROM unnest($2::text[]) AS c(cid) CROSS JOIN LATERAL"
    " (SELECT ctid, user_id, hidden, archived_at FROM members WHERE app_id = $1 AND cid = c.cid OFFSET 0) x"
    " WHERE {}) s WHERE m.ctid = s.t"
)
_NO_SCANS = ("enable_hashjoin", "enable_mergejoin", "enable_seqscan", "enable_bitmapscan")


async def each_member(conn: Tx, set_sql: str, where: str, *args: Any, explain: bool = False) -> list[str]:
    """UPDATE members m SET <set_sql> for the members of channels $2 matching <where> (on x);
    the planner settings are restored before returning (the caller's transaction goes on).
    explain: only the plan's lines, nothing updated."""
    prev = await conn.fetchrow(
        "SELECT " + ", ".join(f"current_setting('{n}') AS {n}, set_config('{n}', 'off', true) AS x_{n}"
                              for n in _NO_SCANS)
    )
    assert prev is not None
    sql = f"UPDATE members m SET {set_sql}, updated_at = now()" + _EACH_MEMBER.format(where)
    try:
        if explain:
            return [r[0] for r in await conn.fetch("EXPLAIN " + sql, *args)]
        await conn.execute(sql, *args)
        return []
    finally:
        await conn.execute("SELECT " + ", ".join(f"set_config('{n}', ${i + 1}, true)" for i, n in enumerate(_NO_SCANS)),
                           *(prev[n] for n in _NO_SCANS))


async def apply_campaign_visibility(
    conn: Tx, app_id: int, campaign_id: str, sender_id: str, visibility: str | None, show: bool,
    after_id: str | None, upto_id: str,
) -> None:
    """A campaign batch's sender_visibility and show_channels, set-based in the batch's
    transaction: over the channels its ledger rows in (after_id, upto_id] were sent into, hide
    or archive them for the sender, and (show_channels) un-hide them for everyone else."""
    # '' sorts before every id: plain bounds keep this one primary-key range of the ledger.
    cids = [r[0] for r in await conn.fetch(
        "SELECT DISTINCT channel_cid FROM campaign_recipients WHERE app_id = $1 AND campaign_id = $2"
        " AND target_id > $3 AND target_id <= $4 AND status = 'sent' AND channel_cid IS NOT NULL",
        app_id, campaign_id, after_id or "", upto_id,
    )]
    if not cids:
        return
    if visibility == "hidden":
        await each_member(conn, "hidden = true", "x.user_id = $3 AND NOT x.hidden", app_id, cids, sender_id)
    elif visibility == "archived":
        await each_member(conn, "archived_at = now()", "x.user_id = $3 AND x.archived_at IS NULL",
                           app_id, cids, sender_id)
    if show:
        await each_member(conn, "hidden = false", "x.user_id <> $3 AND x.hidden", app_id, cids, sender_id)

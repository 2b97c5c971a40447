"""What a campaign object embeds besides its own row: its segments (objects), its sender (the
user object) and a page of its users, fetched for many campaigns in three queries."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from broadcaster.store import segments, users
from broadcaster.store.ledger import Conn


async def related(
    conn: Conn, app_id: int, rows: Sequence[asyncpg.Record], *, user_limit: int | None,
) -> dict[str, dict[str, Any]]:
    """campaign id -> {segments, sender, users?}: `users` holds the first `user_limit` user
    objects of a user_ids campaign by id (empty for segment campaigns); None leaves it out.
    Deleted segments are left out; a sender hard-deleted since is `{"id": ...}`."""
    seg_ids = sorted({s for r in rows for s in r["segment_ids"]})
    segs = {s.id: segments.wire(s) for s in await segments.get_many(conn, app_id, seg_ids)} if seg_ids else {}
    pages = {r["id"]: sorted(r["user_ids"])[:user_limit] for r in rows} if user_limit else {}
    wanted = {r["sender_id"] for r in rows} | {u for page in pages.values() for u in page}
    found = await users.get_many(conn, app_id, sorted(wanted))
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        one: dict[str, Any] = {
            "segments": [segs[s] for s in r["segment_ids"] if s in segs],
            "sender": found.get(r["sender_id"], {"id": r["sender_id"]}),
        }
        if user_limit is not None:
            one["users"] = [found.get(u, {"id": u}) for u in pages.get(r["id"], [])]
        out[r["id"]] = one
    return out


async def user_objects(conn: Conn, app_id: int, ids: Sequence[str]) -> list[dict[str, Any]]:
    found = await users.get_many(conn, app_id, ids) if ids else {}
    return [found.get(u, {"id": u}) for u in ids]

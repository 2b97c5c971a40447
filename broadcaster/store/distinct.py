"""The 1:1 distinct channel of two users, found by its member pair (migration 0090).

Its id is time-ordered (ids.new_distinct_id) so that the indexes keyed by cid grow at their
right edge; the pair (pair_lo, pair_hi: the two user ids in byte order, equal for a 1-member
channel) is what get-or-create and campaigns look it up by, through channels_distinct_pair.
Channels created before 0090 keep their md5 ids and got their pair in the migration.
"""

from __future__ import annotations

from collections.abc import Sequence

from broadcaster.store.ledger import Conn

# The pair index's app column (migration 0250): an expression no other index has, so a lookup
# written with it can be planned on channels_distinct_pair alone, whatever the statistics say.
APP = "app_id + 0"
# The pair index's key, as ON CONFLICT infers it.
PAIR_KEY = f"(({APP}), type, pair_lo, pair_hi) WHERE pair_lo IS NOT NULL"
# lo/hi of the pair (sender, receiver) in SQL, as ids.member_pair: byte order.
LO = "CASE WHEN {r} COLLATE \"C\" < {s} COLLATE \"C\" THEN {r} ELSE {s} END"
HI = "CASE WHEN {r} COLLATE \"C\" < {s} COLLATE \"C\" THEN {s} ELSE {r} END"


def probe(r: str, s: str, app: str = "$1", ctype: str = "$2") -> str:
    """A scalar subquery: the id of the distinct channel of users r and s (SQL expressions),
    soft-deleted ones included (they are revived, not duplicated), through the pair index."""
    return (f"(SELECT c.id FROM channels c WHERE c.{APP} = {app} AND c.type = {ctype}"
            f" AND c.pair_lo = {LO.format(r=r, s=s)} AND c.pair_hi = {HI.format(r=r, s=s)}"
            " AND c.pair_lo IS NOT NULL)")


async def find(conn: Conn, app_id: int, ctype: str, lo: str, hi: str) -> str | None:
    """The id of the distinct channel of the pair (lo, hi), deleted or not."""
    v = await conn.fetchval(
        f"SELECT id FROM channels WHERE {APP} = $1 AND type = $2 AND pair_lo = $3 AND pair_hi = $4"
        " AND pair_lo IS NOT NULL", app_id, ctype, lo, hi)
    return str(v) if v is not None else None


async def ids_with(
    conn: Conn, app_id: int, ctype: str, sender_id: str, receivers: Sequence[str], *, live: bool,
) -> dict[str, str]:
    """receiver -> the id of its distinct channel with the sender, for those that have one
    (live: not soft-deleted). One statement; the probes walk the pair index in order."""
    rows = await conn.fetch(
        "SELECT r.u, c.id FROM unnest($3::text[]) AS r(u) JOIN LATERAL (SELECT c.id, c.deleted_at"
        f" FROM channels c WHERE c.{APP} = $1 AND c.type = $2"
        f" AND c.pair_lo = {LO.format(r='r.u', s='$4')} AND c.pair_hi = {HI.format(r='r.u', s='$4')}"
        " AND c.pair_lo IS NOT NULL) c ON true WHERE NOT $5 OR c.deleted_at IS NULL",
        app_id, ctype, list(receivers), sender_id, live,
    )
    return {r[0]: r[1] for r in rows}

"""Identifiers derived from data (pure)."""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from collections.abc import Iterable
from datetime import datetime


def distinct_channel_id(member_ids: Iterable[str]) -> str:
    """The id of the distinct channel of exactly these members, the same for any order: used
    for 3+ members; 1:1 channels created before migration 0090 carry it too (newer ones get
    new_distinct_id and are found by member_pair).

    Same as SQL: '!members-' || left(md5(string_agg(DISTINCT id, ',' ORDER BY id)), 32)
    (ids sorted by bytes: compare with COLLATE "C" in SQL).
    """
    joined = ",".join(sorted(set(member_ids), key=lambda s: s.encode()))
    return "!members-" + hashlib.md5(joined.encode()).hexdigest()


DISTINCT_PREFIX = "!members-"


def member_pair(a: str, b: str) -> tuple[str, str]:
    """The key of the 1:1 (or 1-member) distinct channel of a and b: the two ids in byte
    order (SQL: COLLATE "C"), the columns (pair_lo, pair_hi) of channels_distinct_pair."""
    return (a, b) if a.encode() <= b.encode() else (b, a)


def new_distinct_id(prefix: str | None = None, n: int = 0) -> str:
    """A new 1:1 distinct channel id, time-ordered like message ids (SQL: '!members-' ||
    prefix || lpad(to_hex(n), 5, '0')): channels created later sort after earlier ones, so
    the indexes keyed by cid grow at their right edge. Found again by its member pair."""
    return DISTINCT_PREFIX + message_id(prefix or message_id_prefix(), n)


def new_id() -> str:
    return str(uuid.uuid4())


def time_ordered_id() -> str:
    """A UUIDv7 (RFC 9562) string: ids made later sort after earlier ones. A generated campaign
    id gets one so that the campaign's audience and ledger rows, keyed (app_id, campaign_id,
    target_id), go in at the right edge of those indexes; a random id puts them in the middle,
    a full descent per row and half-full page splits (about twice the time for the audience's
    rows, README "Delivery policy" part). Within a millisecond a process counts up, so its ids
    stay in order."""
    global _last
    ms = int(time.time() * 1000)
    if _last is not None and _last[0] == ms and _last[2] + 1 < SEQ_MAX:
        _last = (ms, _last[1], _last[2] + 1)
    else:
        _last = (ms, message_id_prefix(ms), 0)
    return message_id(_last[1], _last[2])


_last: tuple[int, str, int] | None = None


SEQ_HEX = 5  # a batch's message ids end in its row number as this many hex digits
SEQ_MAX = 16**SEQ_HEX


def message_id_prefix(now_ms: int | None = None, rand: int | None = None) -> str:
    """The first 31 characters of one batch's message ids, which append the row number as
    SEQ_HEX hex digits: UUIDv7 (RFC 9562) with the unix-ms time and 54 random bits.

    A batch's ids are consecutive and later batches sort after earlier ones, so the
    messages primary key grows at its right edge instead of taking 2,000 inserts at random
    leaf pages per batch (random ids cost 11 % of the bare insert rate at 1M recipients)."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    rand = secrets.randbits(74) if rand is None else rand
    value = (ms & (2**48 - 1)) << 80 | 0x7 << 76 | (rand >> 62) << 64 | 0b10 << 62 | (rand & (2**62 - 1))
    value &= ~(SEQ_MAX - 1)
    return str(uuid.UUID(int=value))[: 36 - SEQ_HEX]


def batch_prefix(app_id: int, campaign_id: str, batch_no: int, planned_at: datetime) -> str:
    """A campaign batch's message id prefix, the same at every attempt of the batch: the
    planned time (campaign_batches.planned_at) plus the batch number as the UUIDv7's
    milliseconds (batches of a campaign in order, later campaigns after), a keyed hash of the
    batch as its random bits."""
    planned_at_ms = int(planned_at.timestamp() * 1000)
    h = int.from_bytes(hashlib.blake2b(f"{app_id}:{campaign_id}:{batch_no}:{planned_at_ms}".encode(),
                                       digest_size=10, person=b"batch-prefix").digest(), "big")
    return message_id_prefix(planned_at_ms + batch_no, rand=h & (2**74 - 1))


def message_id(prefix: str, n: int) -> str:
    """The n-th message id of the batch with this prefix (SQL: prefix || lpad(to_hex(n), 5, '0'))."""
    if not 0 <= n < SEQ_MAX:
        raise ValueError("row number out of range")
    return f"{prefix}{n:0{SEQ_HEX}x}"

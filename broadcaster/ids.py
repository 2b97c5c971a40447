"""Identifiers derived from data (pure)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable


def distinct_channel_id(member_ids: Iterable[str]) -> str:
    """The id of the distinct channel of exactly these members, the same for any order.

    Same as SQL: '!members-' || left(md5(string_agg(DISTINCT id, ',' ORDER BY id)), 32)
    (ids sorted by bytes: compare with COLLATE "C" in SQL).
    """
    joined = ",".join(sorted(set(member_ids), key=lambda s: s.encode()))
    return "!members-" + hashlib.md5(joined.encode()).hexdigest()


def new_id() -> str:
    return str(uuid.uuid4())

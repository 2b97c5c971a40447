"""What the filter language can name (SPEC section 2): bind parameters, columns and the
user and channel schemas (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["text", "number", "bool", "time", "text_array"]


class Params:
    """Bind parameters of one statement; `start` continues numbering after existing ones."""

    def __init__(self, start: list[Any] | None = None) -> None:
        self.values: list[Any] = list(start or [])
        self.leaves = 0

    def add(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


@dataclass(frozen=True)
class Column:
    sql: str
    kind: Kind
    # For a set stored in another table: an SQL template with one `{}` receiving a
    # predicate on the element (e.g. "m.user_id = $3"), true when some element matches.
    element_match: str | None = None


@dataclass(frozen=True)
class Schema:
    columns: dict[str, Column]
    custom: str | None = None
    # ANDed beside each containment test of `custom`, so that a partial index over the rows
    # with custom fields (channels_custom, migration 0260) is one the planner may use.
    custom_guard: str | None = None


_C = Column
USER_SCHEMA = Schema(
    columns={
        "id": _C("id", "text"), "name": _C("name", "text"), "role": _C("role", "text"),
        "teams": _C("teams", "text_array"), "language": _C("language", "text"),
        "created_at": _C("created_at", "time"), "updated_at": _C("updated_at", "time"),
        "deleted_at": _C("deleted_at", "time"),
    },
    custom="custom",
)

# The members subquery names the outer table `channels`: query it without an alias.
CHANNEL_SCHEMA = Schema(
    columns={
        "cid": _C("cid", "text"), "type": _C("type", "text"), "id": _C("id", "text"),
        "team": _C("team", "text"), "created_by_id": _C("created_by_id", "text"),
        "member_count": _C("member_count", "number"),
        "created_at": _C("created_at", "time"), "updated_at": _C("updated_at", "time"),
        "deleted_at": _C("deleted_at", "time"),
        "members": _C(
            "members", "text_array",
            element_match=(
                "EXISTS (SELECT 1 FROM members m WHERE m.app_id = channels.app_id"
                " AND m.cid = channels.cid AND {})"
            ),
        ),
    },
    custom="custom",
    custom_guard="custom <> '{}'::jsonb",
)

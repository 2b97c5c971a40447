"""Keyset pages of filter-language queries (segments, campaigns): the request, its cursor,
the SQL condition of the position and the `next`/`prev` of the answer, in one place."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from broadcaster import cursors, filters, timefmt
from broadcaster.errors import bad_request
from broadcaster.store.segments import keyset_where

T = TypeVar("T")


@dataclass(frozen=True)
class Plan:
    req: cursors.PageRequest
    where: str
    params: list[Any]  # from $2 on ($1 is the app id)
    order: list[tuple[str, int]]  # as run: reversed when paging backwards
    cols: list[str]
    kinds: list[str]


def plan(
    body: Mapping[str, Any], scope: Sequence[Any], schema: filters.Schema,
    default_sort: list[tuple[str, int]], secret: str, *, app_id: int, default_limit: int,
    max_limit: int,
) -> Plan:
    limit = cursors.limit_of(body.get("limit"), "limit", default=default_limit, hi=max_limit)
    query = {"filter": body.get("filter") or {}, "sort": body.get("sort")}
    req = cursors.begin(body, scope, query, secret, limit=limit)
    params = filters.Params(start=[app_id])
    where = filters.compile_filter(req.query.get("filter") or {}, schema, params)
    order = filters.compile_sort(req.query.get("sort"), schema, default=list(default_sort))
    if not any(col == "id" for col, _ in order):
        order.append(("id", 1))
    kind_of = {c.sql: c.kind for c in schema.columns.values()}
    kinds: list[str] = [kind_of.get(col, "text") for col, _ in order]
    for (col, _), kind in zip(order, kinds, strict=True):
        if kind not in ("text", "time"):
            raise bad_request(f"sort: cannot sort by {col!r}")
    cols, dirs = [c for c, _ in order], [d for _, d in order]
    values = cursors.typed_position(req, kinds)
    if values is not None:
        where = f"({where}) AND " + keyset_where(cols, dirs, values, params, req.backwards)
    run = [(c, -d if req.backwards else d) for c, d in order]
    return Plan(req, where, params.values[1:], run, cols, kinds)


def finish(
    p: Plan, rows: list[T], get: Callable[[T, str], Any], secret: str,
) -> tuple[list[T], dict[str, str]]:
    def position(r: T) -> list[Any]:
        return [timefmt.fmt(get(r, c)) if k == "time" else get(r, c) for c, k in zip(p.cols, p.kinds, strict=True)]

    return cursors.finish(p.req, rows, position, secret)

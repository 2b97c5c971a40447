"""The filter language (SPEC section 2) compiled to parameterised SQL (pure, no I/O).

Every value and every custom field name goes in as a bind parameter: the only SQL text
emitted is this module's own and the schema's column expressions.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from broadcaster.errors import bad_request
from broadcaster.filter_schema import CHANNEL_SCHEMA, USER_SCHEMA, Column, Kind, Params, Schema
from broadcaster.timefmt import parse

MAX_DEPTH = 8
COMBINATORS = ("$and", "$or", "$nor")
OPERATORS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists", "$contains", "$autocomplete")
_CMP = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
MAX_LEAVES = 1_000  # conditions per filter (each is SQL text and at least one bind parameter)
_PATH_PART = re.compile(r"\A.{1,255}\Z", re.S)
# Guards the ::timestamptz cast of a custom string so a non-date string never raises.
_TS_PY = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}(:?\d{2})?)?$")
_TS_RE = r"'^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}(:?\d{2})?)?$'"


# Params, Column and the schemas live in filter_schema; callers keep naming them filters.X
__all__ = ["CHANNEL_SCHEMA", "USER_SCHEMA", "Column", "Kind", "Params", "Schema", "compile_filter", "compile_sort"]


def compile_filter(flt: Any, schema: Schema, params: Params, *, field: str = "filter") -> str:
    """An SQL boolean expression for `flt`; "TRUE" for an empty filter."""
    if flt is None:
        return "TRUE"
    return _node(flt, schema, params, field, 1)


def compile_sort(
    sort: Any, schema: Schema, *, field: str = "sort", default: list[tuple[str, int]]
) -> list[tuple[str, int]]:
    """[(column SQL, 1|-1)]; accepts [{"field", "direction"}] or {"field": direction}."""
    if sort is None or sort == [] or sort == {}:
        return [(schema.columns[n].sql if n in schema.columns else n, d) for n, d in default]
    items: list[tuple[Any, Any, str]]
    if isinstance(sort, dict):
        items = [(k, v, f"{field}.{k}") for k, v in sort.items()]
    elif isinstance(sort, list):
        items = []
        for i, s in enumerate(sort):
            if not isinstance(s, dict):
                raise bad_request(f"{field}[{i}] must be an object with field and direction")
            items.append((s.get("field"), s.get("direction", 1), f"{field}[{i}]"))
    else:
        raise bad_request(f"{field} must be a list of {{field, direction}} objects")
    out: list[tuple[str, int]] = []
    for name, direction, path in items:
        if not isinstance(name, str):
            raise bad_request(f"{path}.field must be a string")
        col = schema.columns.get(name)
        if col is None or col.element_match is not None:
            raise bad_request(f"{path}.field: cannot sort by {name!r}")
        if direction is None:
            direction = 1
        if isinstance(direction, bool) or direction not in (1, -1):
            raise bad_request(f"{path}.direction must be 1 or -1")
        out.append((col.sql, int(direction)))
    return out


def _node(flt: Any, schema: Schema, params: Params, path: str, depth: int) -> str:
    if depth > MAX_DEPTH:
        raise bad_request(f"{path}: filter is nested deeper than {MAX_DEPTH} levels")
    if not isinstance(flt, dict):
        raise bad_request(f"{path} must be an object")
    parts: list[str] = []
    for key, value in flt.items():
        sub = f"{path}.{key}"
        if key in COMBINATORS:
            if not isinstance(value, list) or not value:
                raise bad_request(f"{sub} must be a non-empty list of filters")
            params.leaves += len(value)
            if params.leaves > MAX_LEAVES:
                raise bad_request(f"{sub}: a filter may hold at most {MAX_LEAVES} conditions")
            kids = [_node(v, schema, params, f"{sub}[{i}]", depth + 1) for i, v in enumerate(value)]
            if key == "$and":
                parts.append("(" + " AND ".join(kids) + ")")
            elif key == "$or":
                parts.append("(" + " OR ".join(kids) + ")")
            else:
                parts.append("NOT (" + " OR ".join(f"COALESCE({k}, FALSE)" for k in kids) + ")")
        elif key.startswith("$"):
            raise bad_request(f"{sub}: unknown operator {key!r} (expected a field or one of $and, $or, $nor)")
        else:
            parts.append(_field(key, value, schema, params, sub, depth))
    if not parts:
        return "TRUE"
    return parts[0] if len(parts) == 1 else "(" + " AND ".join(parts) + ")"


def _field(name: str, value: Any, schema: Schema, params: Params, path: str, depth: int) -> str:
    ops: dict[str, Any]
    if isinstance(value, dict) and value and all(isinstance(k, str) and k.startswith("$") for k in value):
        if depth + 1 > MAX_DEPTH:
            raise bad_request(f"{path}: filter is nested deeper than {MAX_DEPTH} levels")
        ops = value
    elif isinstance(value, dict) and any(isinstance(k, str) and k.startswith("$") for k in value):
        raise bad_request(f"{path}: cannot mix operators and plain keys")
    else:
        ops = {"$eq": value}
    params.leaves += len(ops)
    if params.leaves > MAX_LEAVES:
        raise bad_request(f"{path}: a filter may hold at most {MAX_LEAVES} conditions")
    col = schema.columns.get(name)
    if col is None:
        if schema.custom is None:
            raise bad_request(f"{path}: unknown field {name!r}")
        keys = name.split(".")
        if not all(_PATH_PART.match(k) for k in keys):
            raise bad_request(f"{path}: invalid field name {name!r}")
        exprs = [_custom_op(schema, keys, op, v, params, f"{path}.{op}") for op, v in ops.items()]
    else:
        exprs = [_column_op(col, op, v, params, f"{path}.{op}") for op, v in ops.items()]
    return exprs[0] if len(exprs) == 1 else "(" + " AND ".join(exprs) + ")"


def _check_op(op: str, path: str) -> None:
    if op not in OPERATORS:
        raise bad_request(f"{path}: unknown operator {op!r}")


def _scalar(col: Column, v: Any, path: str) -> Any:
    """Validate one value against a built-in column's kind, converting timestamps."""
    kind = col.kind
    if kind in ("text", "text_array"):
        if not isinstance(v, str):
            raise bad_request(f"{path} must be a string")
        return v
    if kind == "number":
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise bad_request(f"{path} must be a number")
        return v
    if kind == "bool":
        if not isinstance(v, bool):
            raise bad_request(f"{path} must be a boolean")
        return v
    if isinstance(v, datetime):
        return v
    return parse(v, path)


def _list(v: Any, path: str) -> list[Any]:
    if not isinstance(v, list):
        raise bad_request(f"{path} must be a list")
    if len(v) > 10_000:
        raise bad_request(f"{path} must have at most 10000 values")
    return v


_PG_TYPE = {"text": "text", "number": "numeric", "bool": "boolean", "time": "timestamptz", "text_array": "text"}


def _word_prefix(v: str) -> str:
    """A regex matching `v` (case-folded) at the start of the text or of any word in it;
    one regex (not LIKE OR regex) so a trigram index on lower(column) can serve it."""
    return "(^|[^[:alnum:]])" + re.escape(v.lower())


def _column_op(col: Column, op: str, v: Any, params: Params, path: str) -> str:
    _check_op(op, path)
    if col.element_match is not None:
        return _element_op(col, op, v, params, path)
    sql, kind = col.sql, col.kind
    typ = _PG_TYPE[kind]
    if op == "$exists":
        if not isinstance(v, bool):
            raise bad_request(f"{path} must be a boolean")
        if kind == "text_array":
            return f"(cardinality({sql}) {'>' if v else '='} 0)"
        return f"({sql} IS {'NOT ' if v else ''}NULL)"
    if kind == "text_array":
        if op in ("$eq", "$contains"):
            if isinstance(v, list):
                return f"({sql} @> {params.add([_scalar(col, x, f'{path}[{i}]') for i, x in enumerate(v)])}::text[])"
            return f"({sql} @> ARRAY[{params.add(_scalar(col, v, path))}::text])"
        if op in ("$in", "$nin"):
            vals = [_scalar(col, x, f"{path}[{i}]") for i, x in enumerate(_list(v, path))]
            expr = f"({sql} && {params.add(vals)}::text[])"
            return expr if op == "$in" else f"(NOT {expr})"
        if op == "$ne":
            return f"(NOT ({sql} @> ARRAY[{params.add(_scalar(col, v, path))}::text]))"
        raise bad_request(f"{path}: operator {op} does not apply to a list field")
    if op == "$contains":
        raise bad_request(f"{path}: $contains applies to list fields only")
    if op == "$autocomplete":
        if kind != "text":
            raise bad_request(f"{path}: $autocomplete applies to text fields only")
        if not isinstance(v, str) or not v:
            raise bad_request(f"{path} must be a non-empty string")
        return f"(lower({sql}) ~ {params.add(_word_prefix(v))})"
    if op in ("$in", "$nin"):
        vals = [_scalar(col, x, f"{path}[{i}]") for i, x in enumerate(_list(v, path))]
        expr = f"({sql} = ANY({params.add(vals)}::{typ}[]))"
        return expr if op == "$in" else f"(NOT COALESCE({expr}, FALSE))"
    if v is None and op in ("$eq", "$ne"):
        return f"({sql} IS {'NOT ' if op == '$ne' else ''}NULL)"
    if kind == "bool" and op in _CMP:
        raise bad_request(f"{path}: operator {op} does not apply to a boolean field")
    val = params.add(_scalar(col, v, path))
    if op == "$eq":
        return f"({sql} = {val}::{typ})"
    if op == "$ne":
        return f"({sql} IS DISTINCT FROM {val}::{typ})"
    return f"({sql} {_CMP[op]} {val}::{typ})"


def _element_op(col: Column, op: str, v: Any, params: Params, path: str) -> str:
    assert col.element_match is not None
    tpl = col.element_match
    if op in ("$in", "$nin"):
        vals = [_scalar(col, x, f"{path}[{i}]") for i, x in enumerate(_list(v, path))]
        expr = tpl.format(f"m.user_id = ANY({params.add(vals)}::text[])")
        return expr if op == "$in" else f"(NOT {expr})"
    if op in ("$eq", "$contains"):
        vals = v if isinstance(v, list) else [v]
        if not vals:
            raise bad_request(f"{path} must not be empty")
        exprs = [tpl.format(f"m.user_id = {params.add(_scalar(col, x, path))}::text") for x in vals]
        return exprs[0] if len(exprs) == 1 else "(" + " AND ".join(exprs) + ")"
    if op == "$ne":
        return f"(NOT {tpl.format(f'm.user_id = {params.add(_scalar(col, v, path))}::text')})"
    if op == "$exists":
        if not isinstance(v, bool):
            raise bad_request(f"{path} must be a boolean")
        expr = tpl.format("TRUE")
        return expr if v else f"(NOT {expr})"
    raise bad_request(f"{path}: operator {op} does not apply to {col.sql}")


def _nest(keys: list[str], v: Any) -> dict[str, Any]:
    out: Any = v
    for k in reversed(keys):
        out = {k: out}
    assert isinstance(out, dict)
    return out


def _custom_op(schema: Schema, keys: list[str], op: str, v: Any, params: Params, path: str) -> str:
    """Custom JSONB fields: equality through @> (GIN jsonb_path_ops), comparisons by JSON type."""
    _check_op(op, path)
    custom = schema.custom
    assert custom is not None
    # every document tested is non-empty (keys is), so no row with custom = '{}' contains one
    guard = f"{schema.custom_guard} AND " if schema.custom_guard else ""
    if op in ("$eq", "$ne"):
        expr = f"({guard}{custom} @> {params.add(_nest(keys, v))}::jsonb)"
        return expr if op == "$eq" else f"(NOT {expr})"
    if op in ("$in", "$nin"):
        docs = [_nest(keys, x) for x in _list(v, path)]
        if not docs:
            return "FALSE" if op == "$in" else "TRUE"
        expr = f"({guard}{custom} @> ANY({params.add(docs)}::jsonb[]))"
        return expr if op == "$in" else f"(NOT {expr})"
    if op == "$contains":
        return f"({guard}{custom} @> {params.add(_nest(keys, v if isinstance(v, list) else [v]))}::jsonb)"
    e = f"({custom} #> {params.add(keys)}::text[])"
    if op == "$exists":
        if not isinstance(v, bool):
            raise bad_request(f"{path} must be a boolean")
        return f"({e} IS {'NOT ' if v else ''}NULL)"
    if op == "$autocomplete":
        if not isinstance(v, str) or not v:
            raise bad_request(f"{path} must be a non-empty string")
        return (
            f"COALESCE(CASE WHEN jsonb_typeof({e}) = 'string' THEN "
            f"lower({e} #>> '{{}}') ~ {params.add(_word_prefix(v))} END, FALSE)"
        )
    # $gt $gte $lt $lte: compare only values of the same JSON type (CASE guards the casts).
    cmp = _CMP[op]
    if isinstance(v, bool):
        return f"COALESCE(CASE WHEN jsonb_typeof({e}) = 'boolean' THEN ({e})::boolean {cmp} {params.add(v)}::boolean END, FALSE)"
    if isinstance(v, int | float):
        return f"COALESCE(CASE WHEN jsonb_typeof({e}) = 'number' THEN ({e})::numeric {cmp} {params.add(v)}::numeric END, FALSE)"
    if isinstance(v, str):
        if _TS_PY.match(v):
            ts = parse(v, path)
            return (
                f"COALESCE(CASE WHEN jsonb_typeof({e}) = 'string' AND ({e} #>> '{{}}') ~ {_TS_RE} "
                f"THEN bc_try_timestamptz({e} #>> '{{}}') {cmp} {params.add(ts)}::timestamptz END, FALSE)"
            )
        return f"COALESCE(CASE WHEN jsonb_typeof({e}) = 'string' THEN ({e} #>> '{{}}') {cmp} {params.add(v)}::text END, FALSE)"
    raise bad_request(f"{path} must be a string, number, boolean or timestamp")

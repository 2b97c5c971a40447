"""Field validation helpers: every failure is a 400 naming the field (dot path)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from broadcaster.errors import bad_request

# \A...\Z, never ^...$: `$` also matches before a trailing newline ("alice\n" is not alice).
ID_RE = re.compile(r"\A[A-Za-z0-9@_\-!.=]{1,255}\Z")
CID_RE = re.compile(r"\A[A-Za-z0-9_\-]{1,64}:[A-Za-z0-9@_\-!.=]{1,255}\Z")
TYPE_RE = re.compile(r"\A[A-Za-z0-9_\-]{1,64}\Z")
API_KEY_RE = re.compile(r"\A[A-Za-z0-9_\-]{1,128}\Z")
REQUEST_ID_RE = re.compile(r"\A[A-Za-z0-9._:\-]{1,128}\Z")

_MISSING: Any = object()


def opt(body: dict[str, Any], key: str) -> Any:
    """A field's value, None when absent or JSON null (null means absent)."""
    return body.get(key)


def _given(body: dict[str, Any], key: str, name: str, required: bool) -> Any:
    """The value at key (None when absent or null), refused when required and missing."""
    v = body.get(key)
    if v is None and required:
        raise bad_request(f"{name} is required")
    return v


def string(
    body: dict[str, Any], key: str, *, path: str | None = None, required: bool = False,
    max_len: int = 10_000, allow_empty: bool = True,
) -> str | None:
    name = path or key
    v = _given(body, key, name, required)
    if v is None:
        return None
    if not isinstance(v, str):
        raise bad_request(f"{name} must be a string")
    if len(v) > max_len:
        raise bad_request(f"{name} must be at most {max_len} characters")
    if not allow_empty and not v:
        raise bad_request(f"{name} must not be empty")
    return v


def boolean(body: dict[str, Any], key: str, *, path: str | None = None) -> bool | None:
    v = body.get(key)
    if v is None:
        return None
    if not isinstance(v, bool):
        raise bad_request(f"{path or key} must be a boolean")
    return v


def integer(
    body: dict[str, Any], key: str, *, path: str | None = None, lo: int | None = None,
    hi: int | None = None, default: int | None = None,
) -> int | None:
    name = path or key
    v = body.get(key)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, int):
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        else:
            raise bad_request(f"{name} must be an integer")
    if lo is not None and v < lo or hi is not None and v > hi:
        raise bad_request(f"{name} must be between {lo} and {hi}, got {v}")
    return v


def obj(body: dict[str, Any], key: str, *, path: str | None = None, required: bool = False) -> dict[str, Any] | None:
    v = _given(body, key, path or key, required)
    if v is None:
        return None
    if not isinstance(v, dict):
        raise bad_request(f"{path or key} must be an object")
    return v


def str_list(
    body: dict[str, Any], key: str, *, path: str | None = None, required: bool = False,
    min_items: int = 0, max_items: int = 10_000, pattern: re.Pattern[str] | None = None,
) -> list[str] | None:
    name = path or key
    v = _given(body, key, name, required)
    if v is None:
        return None
    if not isinstance(v, list):
        raise bad_request(f"{name} must be a list of strings")
    if len(v) < min_items or len(v) > max_items:
        raise bad_request(f"{name} must hold between {min_items} and {max_items} items, got {len(v)}")
    for i, item in enumerate(v):
        if not isinstance(item, str):
            raise bad_request(f"{name}[{i}] must be a string")
        if pattern is not None and not pattern.match(item):
            raise bad_request(f"{name}[{i}] is not a valid id: {item[:80]!r}")
    return v


def ident(value: Any, name: str, pattern: re.Pattern[str] = ID_RE) -> str:
    if not isinstance(value, str):
        raise bad_request(f"{name} must be a string")
    if not pattern.match(value):
        raise bad_request(
            f"{name} is not a valid id: {value[:80]!r} (1-255 of letters, digits and @_-!.=)"
        )
    return value


def no_nul(value: Any, path: str) -> None:
    """PostgreSQL text and jsonb cannot hold NUL: refuse it up front, naming where it is."""
    if isinstance(value, str):
        if "\x00" in value:
            raise bad_request(f"{path or 'body'} must not contain the NUL character (\\u0000)")
    elif isinstance(value, dict):
        for k, v in value.items():
            sub = f"{path}.{k}" if path else str(k)
            if "\x00" in k:
                raise bad_request(f"{path or 'body'} has a key containing the NUL character (\\u0000)")
            no_nul(v, sub)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            no_nul(v, f"{path}[{i}]")


_PATH_RULES: dict[str, tuple[tuple[re.Pattern[str], ...], str]] = {
    "id": ((ID_RE,), "1-255 of letters, digits and @_-!.="),
    "type": ((TYPE_RE,), "1-64 of letters, digits and _-"),
    "target_id": ((ID_RE, CID_RE), "a user id or a channel cid type:id"),
    "user_id": ((ID_RE,), "1-255 of letters, digits and @_-!.="),
}


def path_params(match_info: Mapping[str, str]) -> None:
    """Path ids are checked like body ids (pattern, length, NUL, no trailing newline): a value
    that could never name a resource is a 400 naming the parameter, not a database error."""
    for name, value in match_info.items():
        rule = _PATH_RULES.get(name)
        if rule is not None and not any(p.match(value) for p in rule[0]):
            raise bad_request(f"path parameter {name} is not a valid id: {value[:80]!r} ({rule[1]})")

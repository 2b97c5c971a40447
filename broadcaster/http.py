"""Request/response plumbing: JSON bodies in, JSON with `duration` out (orjson throughout)."""

from __future__ import annotations

import time
from typing import Any

import orjson
from aiohttp import web

from broadcaster.errors import bad_request, too_large
from broadcaster.keys import SETTINGS, T0
from broadcaster.validate import no_nul

# JSON nesting accepted in bodies: well inside orjson's own limits (it parses 1024 levels but
# serialises only 254, and responses wrap stored values a few levels deeper).
MAX_DEPTH = 64


def check_depth(data: Any, what: str) -> None:
    """Iterative (no recursion limit to hit at any depth): a 400 beyond MAX_DEPTH levels."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        v, d = stack.pop()
        if d > MAX_DEPTH:
            raise bad_request(f"{what} is nested deeper than {MAX_DEPTH} levels")
        kids = v.values() if isinstance(v, dict) else v
        stack.extend((k, d + 1) for k in kids if isinstance(k, dict | list))


def _default(obj: Any) -> Any:
    from datetime import datetime

    from broadcaster.timefmt import fmt

    if isinstance(obj, datetime):
        return fmt(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__}")


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj, default=_default, option=orjson.OPT_PASSTHROUGH_DATETIME)


def duration(request: web.Request) -> str:
    started = request.get(T0, time.perf_counter())
    return f"{(time.perf_counter() - started) * 1000:.2f}ms"


def ok(request: web.Request, body: dict[str, Any] | None = None, status: int = 200) -> web.Response:
    out = dict(body or {})
    out["duration"] = duration(request)
    return web.Response(body=dumps(out), status=status, content_type="application/json")


async def read_json(request: web.Request, *, required: bool = False) -> dict[str, Any]:
    """The request body as a JSON object; an empty body is `{}` unless one is required."""
    limit = request.app[SETTINGS].max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(1 << 16):
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        if required:
            raise bad_request("request body is required: a JSON object")
        return {}
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise bad_request(f"request body is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise bad_request("request body must be a JSON object")
    if raw.count(b"{") + raw.count(b"[") > MAX_DEPTH:
        check_depth(data, "request body")
    if b"\\u0000" in raw:
        no_nul(data, "")
    return data


def query_payload(request: web.Request) -> dict[str, Any]:
    """GET endpoints of the hosted API carry their query as ?payload=<json>."""
    raw = request.query.get("payload")
    if raw is None:
        return {}
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise bad_request(f"payload query parameter is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise bad_request("payload query parameter must be a JSON object")
    if raw.count("{") + raw.count("[") > MAX_DEPTH:
        check_depth(data, "payload")
    if "\\u0000" in raw:
        no_nul(data, "payload")
    return data

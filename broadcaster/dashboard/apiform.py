"""Small helpers the segment, automation, webhook and settings screens share: an API answer
that must succeed, cursor links, ids pasted into a textarea, form values as the API's types."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from broadcaster.dashboard.apicall import ApiResult
from broadcaster.errors import ApiError

_SPLIT = re.compile(r"[,;\r\n]+")
_INT = re.compile(r"^-?\d+$")
_FLOAT = re.compile(r"^-?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?$")


def must(res: ApiResult) -> dict[str, Any]:
    """The body of a successful answer; a failed one becomes the page's error (the dashboard's
    error pages show the API's status and message: a 404 of another app's id stays a 404)."""
    if not res.ok:
        raise ApiError(res.status, int(res.body.get("code") or 4), res.message)
    return res.body


def cursor(query: Any) -> dict[str, str]:
    """The `next`/`prev` of a page link, as the API takes them (one of them at most)."""
    if query.get("next"):
        return {"next": str(query["next"])}
    if query.get("prev"):
        return {"prev": str(query["prev"])}
    return {}


def split_ids(text: str) -> list[str]:
    """Ids pasted one a line or separated by commas (surrounding blanks and empty items
    dropped; a space inside stays, for the API to refuse): their validation is the API's."""
    return [x.strip() for x in _SPLIT.split(text) if x.strip()]


def number(raw: str) -> Any:
    """A form field as the JSON number it spells; anything else goes to the API as the string
    it is, so the API's own validation message names the field."""
    s = raw.strip()
    if _INT.match(s):
        return int(s)
    if _FLOAT.match(s):
        return float(s)
    return s


def form_str(form: Any, name: str) -> str:
    v = form.get(name)
    return v.strip() if isinstance(v, str) else ""


async def json_body(request: web.Request) -> dict[str, Any]:
    """The JSON body of a script's call (the upload's chunks); not an object → a 400 the
    script shows."""
    from broadcaster.http import read_json

    return await read_json(request, required=True)


def row_error(message: str, list_field: str, rows_of: list[int], prefix: str,
              parts: dict[str, str], default: str) -> dict[str, str] | None:
    """An error the API names as `<list_field>[i].<key>` (the i-th item sent) next to the field
    of the form row that item came from: `<prefix>-<row>-<parts[key]>` (rows left empty or
    removed are not sent, so i and the row differ)."""
    m = re.search(re.escape(list_field) + r"\[(\d+)\](?:\.(\w+))?", message)
    if m is None or int(m.group(1)) >= len(rows_of):
        return None
    return {f"{prefix}-{rows_of[int(m.group(1))]}-{parts.get(m.group(2) or '', default)}": message}


def json_answer(res: ApiResult) -> web.Response:
    """The API's answer to a script's call, its status kept; errors as {"error": message}."""
    if res.ok:
        return web.json_response(res.body, status=res.status)
    return web.json_response({"error": res.message, "status": res.status}, status=res.status)

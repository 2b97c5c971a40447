"""The OpenAPI document and the docs page rendering it, served from the package (offline)."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from aiohttp import web

from broadcaster.errors import not_found
from broadcaster.http import dumps
from broadcaster.openapi import document

routes = web.RouteTableDef()
STATIC = Path(__file__).resolve().parent.parent / "static"
ASSET_RE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,99}$")
TYPES = {".js": "application/javascript", ".css": "text/css", ".html": "text/html",
         ".svg": "image/svg+xml", ".png": "image/png", ".json": "application/json"}


@cache
def _document_bytes() -> bytes:
    return dumps(document())


@routes.get("/openapi.json", name="OpenAPI")
async def openapi(request: web.Request) -> web.Response:
    return web.Response(body=_document_bytes(), content_type="application/json")


@routes.get("/docs", name="Docs")
async def docs(request: web.Request) -> web.Response:
    return web.Response(body=(STATIC / "docs.html").read_bytes(), content_type="text/html",
                        charset="utf-8")


@routes.get("/docs/{file}", name="DocsAsset")
async def docs_asset(request: web.Request) -> web.Response:
    name = request.match_info["file"]
    path = STATIC / name
    # Only plain files directly in static/: no traversal, no dotfiles.
    if not ASSET_RE.match(name) or ".." in name or not path.is_file():
        raise not_found(f"docs asset {name[:100]!r}")
    ctype = TYPES.get(path.suffix, "application/octet-stream")
    resp = web.Response(body=path.read_bytes(), content_type=ctype)
    resp.headers["Cache-Control"] = "public, max-age=300"
    return resp

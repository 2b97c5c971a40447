"""The OpenAPI document is the contract: it and the router agree; /docs works offline."""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

import orjson
import schemathesis

from broadcaster.api.docs import STATIC
from broadcaster.app import create_app
from broadcaster.middleware import DASHBOARD_PREFIX, PUBLIC
from broadcaster.openapi import document
from broadcaster.settings import Settings
from tests.helpers import assert_error

METHODS = {"get", "post", "put", "patch", "delete"}


def _routes() -> dict[tuple[str, str], str]:
    app = create_app(Settings())
    out = {}
    for r in app.router.routes():
        if r.method == "HEAD":  # aiohttp adds one per GET
            continue
        if (r.name or "").startswith(DASHBOARD_PREFIX):  # HTML pages for browsers, not the API
            continue
        out[(r.method.lower(), r.resource.canonical)] = r.name
    return out


def _operations() -> dict[tuple[str, str], dict]:
    doc = document()
    return {(m, p): o for p, ops in doc["paths"].items() for m, o in ops.items() if m in METHODS}


def test_every_route_is_documented_and_every_documented_route_exists():
    routes, ops = _routes(), _operations()
    undocumented = sorted(set(routes) - set(ops))
    missing = sorted(set(ops) - set(routes))
    assert not undocumented, f"routes the document lacks: {undocumented}"
    assert not missing, f"documented operations with no route: {missing}"
    wrong = {k: (routes[k], ops[k]["operationId"]) for k in routes
             if routes[k] != ops[k]["operationId"]}
    assert not wrong, f"route name != operationId: {wrong}"


def test_document_is_well_formed():
    doc = document()
    assert doc["openapi"].startswith("3.1")
    schemathesis.openapi.from_dict(doc)  # parses and resolves every operation
    ops = _operations()
    ids = [o["operationId"] for o in ops.values()]
    assert len(ids) == len(set(ids)), "operationIds are unique"
    assert set(doc["components"]["schemas"]["Error"]["required"]) == {
        "code", "message", "StatusCode", "duration", "more_info", "details"}
    refs = set(re.findall(r'"\$ref":"#/components/(\w+)/(\w+)"', orjson.dumps(doc).decode()))
    for section, name in refs:
        assert name in doc["components"][section], f"dangling $ref {section}/{name}"
    for (method, path), o in ops.items():
        names = re.findall(r"{(\w+)}", path)
        declared = [p["name"] for p in o["parameters"] if p["in"] == "path"]
        assert names == declared, (method, path)
        if o["operationId"] in PUBLIC:
            assert o["security"] == [], o["operationId"]
            continue
        assert {"401", "403", "429", "500"} <= set(o["responses"]), o["operationId"]
        ok = next(v for k, v in o["responses"].items() if k.startswith("2"))
        assert set(ok["headers"]) == {"X-RateLimit-Limit", "X-RateLimit-Remaining",
                                      "X-RateLimit-Reset"}
    schemes = doc["components"]["securitySchemes"]
    assert schemes["api_key"] == {**schemes["api_key"], "in": "query", "name": "api_key"}
    assert schemes["jwt"]["name"] == "Authorization"


async def test_openapi_json_is_served_without_auth(client):
    r = await client.get("/openapi.json")
    assert r.status == 200
    assert r.headers["Content-Type"].startswith("application/json")
    assert orjson.loads(await r.read()) == orjson.loads(orjson.dumps(document()))


async def test_docs_page_and_assets_are_served_from_the_package(client):
    r = await client.get("/docs")
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/html")
    html = await r.text()
    refs = re.findall(r'(?:src|href)="([^"#]+)"', html)
    assert any(x.endswith(".js") for x in refs) and any(x.endswith(".css") for x in refs)
    for ref in refs:
        assert not urlsplit(ref).scheme and not ref.startswith("//"), f"external URL {ref}"
        path = urlsplit(urljoin("http://host/docs", ref)).path
        asset = await client.get(path)
        assert asset.status == 200, path
        body = await asset.read()
        if path.startswith("/docs/"):
            assert body == (STATIC / path.rsplit("/", 1)[1]).read_bytes()
    # Nothing on the page reaches out: no absolute URLs in any shipped asset.
    for f in STATIC.iterdir():
        text = f.read_text()
        assert not re.search(r"(?:src|href|url)\s*[=(]\s*[\"']?(?:https?:)?//", text), f.name
        assert "cdn" not in text.lower(), f.name


async def test_docs_assets_refuse_traversal_and_unknown_files(client):
    for name in ("nope.js", ".hidden", "..%2Fopenapi.py", "%2E%2E%2Fapp.py"):
        r = await client.get(f"/docs/{name}")
        assert_error(r.status, await r.json(), 404, 16)

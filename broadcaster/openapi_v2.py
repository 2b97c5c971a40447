"""The /api/v2 operations of the OpenAPI document: the root operations at their v2 paths
(broadcaster/api/v2.py), answering `V2<Schema>` variants whose built-in timestamps are integer
nanoseconds since the epoch, and the bare campaign of StopCampaign/UpdateCampaign."""

from __future__ import annotations

import copy
from typing import Any

from broadcaster.api.v2 import BARE_CAMPAIGN, PREFIX, TIME_KEYS, v2_path

J = dict[str, Any]
NS: J = {"type": ["integer", "string"], "description": "nanoseconds since the epoch (v2 paths); a time "
         "past 2262, whose nanoseconds overflow 64 bits, stays an RFC 3339 string"}
REF = "#/components/schemas/"


def _is_time(p: Any) -> bool:
    return isinstance(p, dict) and (p.get("format") == "date-time" or any(
        isinstance(x, dict) and x.get("format") == "date-time" for x in p.get("anyOf", [])))


def nsify(node: Any) -> Any:
    """A response schema as the v2 paths answer it: refs to V2 variants, timestamps as ns."""
    if isinstance(node, list):
        return [nsify(x) for x in node]
    if not isinstance(node, dict):
        return node
    out: J = {}
    for k, v in node.items():
        if k == "$ref" and isinstance(v, str) and v.startswith(REF):
            out[k] = REF + "V2" + v[len(REF):]
        elif k == "properties" and isinstance(v, dict):
            out[k] = {name: ({"anyOf": [NS, {"type": "null"}]} if "anyOf" in p else NS)
                      if name in TIME_KEYS and _is_time(p) else nsify(p) for name, p in v.items()}
        else:
            out[k] = nsify(v)
    return out


def schemas(base: J) -> J:
    """The V2 variant of every schema (requests keep the root schemas: RFC 3339 is accepted)."""
    return {"V2" + name: nsify(copy.deepcopy(s)) for name, s in base.items()}


def _responses(operation: J) -> J:
    out: J = {}
    for code, resp in operation["responses"].items():
        if not code.startswith("2") or "content" not in resp:
            out[code] = resp
            continue
        resp = copy.deepcopy(resp)
        media = resp["content"]["application/json"]
        if operation["operationId"] in BARE_CAMPAIGN:
            media["schema"] = {"allOf": [{"$ref": REF + "Campaign"}, {"type": "object", "properties": {
                "duration": {"type": "string"}}}], "description": "the campaign object itself"}
        media["schema"] = nsify(media["schema"])
        out[code] = resp
    return out


def operations(ops: list[tuple[str, str, J]]) -> list[tuple[str, str, J]]:
    out = []
    for method, path, operation in ops:
        alias = v2_path(path)
        if alias is not None:
            out.append((method, alias, {
                **operation, "operationId": PREFIX + operation["operationId"],
                "tags": [*operation["tags"], "v2"], "responses": _responses(operation),
                "summary": f"{operation['summary']} (the newer SDKs' v2 path)"}))
    return out

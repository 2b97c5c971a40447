"""The builders of the OpenAPI document's operations: `op` with its error responses and
rate-limit headers, `q` for a query parameter (shared by openapi.py and its parts)."""

from __future__ import annotations

from broadcaster.openapi_schemas import INT, J, ref

RL_HEADERS: J = {
    "X-RateLimit-Limit": {"description": "requests per minute of this operation",
                          "schema": INT},
    "X-RateLimit-Remaining": {"description": "left in the current window", "schema": INT},
    "X-RateLimit-Reset": {"description": "unix seconds when the window resets", "schema": INT},
}
RL_REFS: J = {k: {"$ref": f"#/components/headers/{k}"} for k in RL_HEADERS}
ERRORS = {
    "400": "bad input (code 4), or an action the current state forbids",
    "401": "unknown api_key (2), missing/malformed token (5), token expired (40), "
           "not yet valid (41), issued in the future (42), bad signature (43)",
    "403": "a user token (code 17): every endpoint is server-side only",
    "404": "no such resource in this app (code 16)",
    "409": "id already exists (code 4)",
    "413": "body larger than the configured maximum (code 22)",
    "429": "rate limited (code 9); see Retry-After",
    "500": "internal error (code -1), logged with the request id",
    "503": "a dependency is unreachable (code 80): PostgreSQL down or restarting; see Retry-After"
           " (on /readyz: not ready)",
}


def error(status: str) -> J:
    return {"$ref": f"#/components/responses/E{status}"}


def error_response(status: str) -> J:
    resp: J = {"description": ERRORS[status],
               "content": {"application/json": {"schema": ref("Error")}}}
    if status == "429":
        resp["headers"] = {**RL_REFS, "Retry-After": {"schema": INT,
                                                      "description": "seconds to wait"}}
    if status == "503":
        resp["headers"] = {"Retry-After": {"schema": INT, "description": "seconds to wait"}}
    return resp


def op(op_id: str, tag: str, summary: str, ok: J | None = None, *, body: J | None = None,
       body_required: bool = False, params: tuple[J, ...] = (), errors: str = "400 404",
       status: str = "200", public: bool = False) -> J:
    out: J = {"operationId": op_id, "tags": [tag], "summary": summary}
    out["parameters"] = list(params)
    if body is not None:
        out["requestBody"] = {"required": body_required,
                              "content": {"application/json": {"schema": body}}}
    ok_resp: J = {"description": "success",
                  "content": {"application/json": {"schema": ok or ref("Empty")}}}
    codes = errors.split()
    if not public:
        ok_resp["headers"] = RL_REFS
        codes += ["401", "403", "429", "503"]
        if body is not None:
            codes.append("413")
        out["security"] = [{"api_key": [], "jwt": []}]
    else:
        out["security"] = []
    out["responses"] = {status: ok_resp, **{c: error(c) for c in sorted(set(codes))},
                        "500": error("500")}
    return out


def q(name: str, schema: J, description: str = "", required: bool = False) -> J:
    return {"name": name, "in": "query", "required": required, "schema": schema,
            "description": description}

"""The dashboard calls the API as the SDKs do: HTTP to this same server with the signed-in
app's api_key and a fresh server token, so every action runs the API's whole middleware
chain and handler (auth, rate limits, validation, tenant isolation) and answers what an SDK
would be answered."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from broadcaster import auth
from broadcaster.keys import HTTP
from broadcaster.logs import request_id

TIMEOUT = aiohttp.ClientTimeout(total=60)


@dataclass
class ApiResult:
    status: int
    body: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def message(self) -> str:
        return str(self.body.get("message") or f"the API answered {self.status}")


def _base(request: web.Request) -> str:
    """The address this request arrived on: the API is served there too."""
    transport = request.transport
    sock = transport.get_extra_info("sockname") if transport is not None else None
    if not isinstance(sock, tuple):
        raise RuntimeError("the dashboard needs the API on a TCP socket")
    host, port = sock[0], sock[1]
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1" if host == "0.0.0.0" else "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def call(request: web.Request, method: str, path: str, *, json: Any = None,
               params: dict[str, str] | None = None) -> ApiResult:
    from broadcaster.dashboard.session import current

    app = current(request).app
    headers = {"Authorization": auth.server_token(app.api_secret, iat=int(time.time())),
               "stream-auth-type": "jwt", "Content-Type": "application/json",
               "User-Agent": "broadcaster-dashboard"}
    rid = request_id.get()
    if rid:  # the API's log lines of this call carry the page's request id
        headers["X-Request-Id"] = rid
    q = {**(params or {}), "api_key": app.api_key}
    data = orjson.dumps(json) if json is not None else None
    async with request.app[HTTP].request(method, _base(request) + path, params=q, data=data,
                                         headers=headers, timeout=TIMEOUT) as resp:
        raw = await resp.read()
    try:
        body = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError:
        body = {"message": raw[:200].decode(errors="replace")}
    return ApiResult(resp.status, body if isinstance(body, dict) else {"items": body})

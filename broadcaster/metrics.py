"""Prometheus metrics: defined once here, incremented where things happen."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import time
from collections.abc import Callable, Sequence
from typing import Any

from aiohttp import web
from arq.cron import CronJob
from arq.worker import Function, Retry, RetryJob
from prometheus_client import Counter, Gauge, Histogram, start_http_server

from broadcaster.middleware import Handler, operation

HTTP_REQUESTS = Counter(
    "broadcaster_http_requests_total", "API requests", ["operation", "status"]
)
HTTP_LATENCY = Histogram(
    "broadcaster_http_request_seconds", "API request latency", ["operation"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
RATE_LIMITED = Counter("broadcaster_rate_limited_total", "Requests refused with 429", ["operation"])
RATE_LIMIT_FAIL_OPEN = Counter(
    "broadcaster_rate_limit_fail_open_total", "Requests let through because Redis was unreachable"
)
JOBS = Counter("broadcaster_jobs_total", "arq jobs run", ["function", "outcome"])
# outcome: ok | failed | retried (arq runs it again: Retry, or cancelled by a shutdown)
JOB_LATENCY = Histogram(
    "broadcaster_job_seconds", "arq job run time", ["function"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
CAMPAIGN_MESSAGES = Counter(
    "broadcaster_campaign_messages_total", "Campaign recipients processed", ["status"]
)  # status: sent | errored | skipped
CHANNELS_CREATED = Counter("broadcaster_channels_created_total", "Channels created by campaigns")
WEBHOOK_DELIVERIES = Counter(
    "broadcaster_webhook_deliveries_total", "Webhook delivery attempts", ["outcome"]
)  # outcome: delivered | retry | failed
WEBHOOK_LATENCY = Histogram(
    "broadcaster_webhook_delivery_seconds", "Webhook request latency",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
OUTBOX_DEPTH = Gauge("broadcaster_outbox_depth", "Webhook events not yet delivered")


@web.middleware
async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    status = 500
    try:
        resp = await handler(request)
        status = resp.status
        return resp
    finally:
        op = operation(request) or "unmatched"
        if op != "Metrics":
            HTTP_REQUESTS.labels(op, str(status)).inc()
            HTTP_LATENCY.labels(op).observe(time.perf_counter() - started)


def _timed(name: str, coroutine: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(coroutine)
    async def run(ctx: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        outcome = "failed"
        try:
            result = await coroutine(ctx, *args, **kwargs)
            outcome = "ok"
            return result
        except (Retry, RetryJob, asyncio.CancelledError):
            outcome = "retried"
            raise
        finally:
            JOBS.labels(name, outcome).inc()
            JOB_LATENCY.labels(name).observe(time.perf_counter() - started)

    return run


def instrument(functions: Sequence[Any]) -> list[Any]:
    """Wrap arq functions (plain coroutines, arq.worker.Function or arq.cron.CronJob) so that
    every run counts in JOBS/JOB_LATENCY under its arq name; names are kept as arq sees them."""
    out: list[Any] = []
    for f in functions:
        if isinstance(f, Function | CronJob):
            out.append(dataclasses.replace(f, coroutine=_timed(f.name, f.coroutine)))
        else:
            out.append(_timed(f.__qualname__, f))
    return out


_SERVING: set[int] = set()


def serve_worker_metrics(port: int, host: str = "0.0.0.0", token: str = "") -> None:
    """The worker's own /metrics (prometheus_client's HTTP server, in a thread). Once per
    process: a worker rebuilt after an outage runs its startup again on the same port. With a
    token (BROADCASTER_METRICS_TOKEN) it requires `Authorization: Bearer <token>`, as the API."""
    if port in _SERVING:
        return
    if not token:
        start_http_server(port, addr=host)
    else:
        _serve_with_token(port, host, token)
    _SERVING.add(port)


def _serve_with_token(port: int, host: str, token: str) -> None:
    import hmac
    import threading
    from http.server import ThreadingHTTPServer

    import orjson
    from prometheus_client.exposition import MetricsHandler

    expected = f"Bearer {token}".encode()

    class Handler(MetricsHandler):
        def do_GET(self) -> None:
            if hmac.compare_digest(self.headers.get("Authorization", "").encode(), expected):
                return super().do_GET()
            body = orjson.dumps({"code": 5, "message": "GET /metrics needs Authorization: Bearer"
                                 " <BROADCASTER_METRICS_TOKEN>", "StatusCode": 401, "duration": "0.00ms",
                                 "more_info": "docs/errors.md#code-5"})
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return None

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="worker-metrics", daemon=True).start()

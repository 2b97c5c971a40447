"""The smallest webhook receiver a user would write: Python's `http.server.ThreadingHTTPServer`
with its defaults (HTTP/1.0, a connection and a thread per request, listen backlog 5),
answering 200 to every POST (or `status`). The bench and the tests measure delivery against it."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Hit:
    webhook_id: str
    attempt: int
    type: str
    at: float  # time.monotonic() when the request was read
    body: dict[str, Any]


class PlainReceiver:
    """Records every request (thread-safe); `start()` serves in a daemon thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.hits: list[Hit] = []
        self.status = 200  # what every POST is answered (a test may make it fail)
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the http.server API)
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = json.loads(raw)
                hit = Hit(self.headers.get("X-Webhook-Id", ""), int(self.headers.get("X-Webhook-Attempt", "0")),
                          body.get("type", ""), time.monotonic(), body)
                with owner._lock:
                    owner.hits.append(hit)
                self.send_response(owner.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/hook"

    def start(self) -> PlainReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def snapshot(self) -> list[Hit]:
        with self._lock:
            return list(self.hits)

    def summary(self) -> dict[str, int]:
        """requests, distinct events, retries (attempt > 1) and duplicates (an event seen again)."""
        hits = self.snapshot()
        ids = {h.webhook_id for h in hits}
        return {"requests": len(hits), "events": len(ids),
                "retries": sum(1 for h in hits if h.attempt > 1),
                "duplicates": len(hits) - len(ids)}

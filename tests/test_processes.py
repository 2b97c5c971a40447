"""The real `broadcaster serve` process: JSON logs with request ids, graceful SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request

import orjson

from broadcaster.devstack import free_port


def test_serve_logs_json_with_request_id_and_stops_on_sigterm(settings):
    port = free_port()
    env = {**os.environ, **settings.with_(port=port, log_level="INFO").to_env()}
    proc = subprocess.Popen([sys.executable, "-m", "broadcaster", "serve"], env=env,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                    rid = r.headers["X-Request-Id"]
                    assert r.status == 200
                    break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        assert proc.stderr is not None
        lines = [orjson.loads(line) for line in proc.stderr.read().splitlines() if line.startswith(b"{")]
        hits = [x for x in lines if x.get("request_id") == rid]
        assert hits and hits[0]["path"] == "/healthz" and hits[0]["status"] == 200, lines
    finally:
        if proc.poll() is None:
            proc.kill()

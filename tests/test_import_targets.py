"""The import CLI against a real server: 100,000 ids, SIGKILL half-way, --resume, exact size."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import orjson
from stream_chat.types.segment import SegmentType

from tests.helpers import wait_for

ROOT = Path(__file__).resolve().parent.parent


def _cli(sdk, live_server, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "BROADCASTER_URL": live_server.url, "BROADCASTER_API_KEY": sdk.api_key,
           "BROADCASTER_API_SECRET": sdk.api_secret}
    return subprocess.Popen([sys.executable, "-m", "broadcaster", "import-targets", *args], env=env,
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _done(state: Path) -> int:
    try:
        return len(orjson.loads(state.read_bytes())["done"])
    except (FileNotFoundError, orjson.JSONDecodeError, KeyError):
        return 0


def test_import_100k_killed_and_resumed(sdk, live_server, tmp_path: Path):
    sdk.create_segment(SegmentType.USER, "imported")
    src = tmp_path / "ids.txt"
    lines = [f"user-{i:06d}" for i in range(100_000)]
    lines.insert(500, "bad id with spaces")
    lines.insert(70_000, "")  # blank lines are not ids, and not errors
    lines.insert(90_000, "x" * 300)
    src.write_text("\n".join(lines) + "\n")
    state = tmp_path / "ids.txt.import-state.json"

    first = _cli(sdk, live_server, "imported", str(src), "--batch-size", "2000", "--concurrency", "2")
    wait_for(lambda: _done(state) >= 12 or first.poll() is not None, timeout=120)
    first.send_signal(signal.SIGKILL)
    first.wait()
    killed_at = _done(state)
    assert 12 <= killed_at < 50, killed_at  # really half-way

    second = _cli(sdk, live_server, "imported", str(src), "--batch-size", "2000", "--resume")
    out, err = second.communicate(timeout=300)
    assert second.returncode == 0, err.decode()[-2000:]
    summary = orjson.loads(out.decode().strip().splitlines()[-1])
    assert summary["batches"] == 50 and summary["batches_skipped"] >= killed_at, summary
    assert summary["bad_lines"] == 2 and summary["size"] == 100_000, summary
    text = err.decode()
    assert "line 501:" in text and "line 90001:" in text, text[-3000:]
    assert "ids/s" in text and "ETA" in text
    assert sdk.get_segment("imported")["segment"]["size"] == 100_000
    assert _done(state) == 50


def test_import_csv_column_and_bad_segment(sdk, live_server, tmp_path: Path):
    sdk.create_segment(SegmentType.CHANNEL, "chans")
    src = tmp_path / "chans.csv"
    src.write_text("name,cid\nA,messaging:a\nB,messaging:b\nC,not-a-cid\nD,messaging:a\n")
    proc = _cli(sdk, live_server, "chans", str(src), "--column", "cid", "--quiet")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    summary = orjson.loads(out.decode().strip().splitlines()[-1])
    assert summary["size"] == 2 and summary["bad_lines"] == 1, summary
    assert "line 4:" in err.decode()
    proc = _cli(sdk, live_server, "nope", str(src), "--column", "cid")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and b"nope" in err


def test_import_retries_429_and_5xx(sdk, live_server, tmp_path: Path):
    """A flaky proxy in front of the real server: 503, then 429 with Retry-After, then through."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from urllib.request import Request, urlopen

    sdk.create_segment(SegmentType.USER, "flaky")
    hits: list[int] = []

    class Flaky(BaseHTTPRequestHandler):
        def _forward(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) or None
            if self.command == "POST" and len(hits) < 2:
                hits.append(1)
                self.send_response(503 if len(hits) == 1 else 429)
                if len(hits) == 2:
                    self.send_header("Retry-After", "1")
                self.end_headers()
                return
            req = Request(live_server.url + self.path, data=body, method=self.command,
                          headers={k: v for k, v in self.headers.items() if k.lower() != "host"})
            with urlopen(req) as r:
                data = r.read()
                self.send_response(r.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        do_GET = do_POST = _forward

        def log_message(self, *a: object) -> None:
            pass

    proxy = ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        src = tmp_path / "few.txt"
        src.write_text("a\nb\nc\n")
        env = {**os.environ, "BROADCASTER_API_KEY": sdk.api_key, "BROADCASTER_API_SECRET": sdk.api_secret}
        proc = subprocess.run(
            [sys.executable, "-m", "broadcaster", "import-targets", "flaky", str(src), "--quiet",
             "--url", f"http://127.0.0.1:{proxy.server_address[1]}"],
            env=env, cwd=ROOT, capture_output=True, timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        err = proc.stderr.decode()
        assert "HTTP 503" in err and "in 1.0s after HTTP 429" in err, err  # Retry-After honoured
        assert orjson.loads(proc.stdout.decode().strip().splitlines()[-1])["size"] == 3
    finally:
        proxy.shutdown()

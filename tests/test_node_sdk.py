"""The npm SDKs' segment and campaign flows (tests/node/: `stream-chat@9` on the root paths,
`@stream-io/node-sdk` on /api/v2) against a live server and a real worker, run with
`node --test` so the suite's one command covers them."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.helpers import Creds, LiveServer

NODE = shutil.which("node")


def _node_modules() -> None:
    """scripts/test runs `npm ci`; a bare `pytest` on a fresh checkout does it here."""
    if (ROOT / "node_modules" / "stream-chat" / "package.json").exists():
        return
    npm = shutil.which("npm")
    assert npm, "npm is needed to install tests/node's packages (npm ci)"
    subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=ROOT, check=True, timeout=600)


@pytest.mark.skipif(NODE is None, reason="node (>= 20) is not installed")
def test_npm_sdk_segment_and_campaign_flows(live_server: LiveServer, sync_creds: Creds, start_worker: Any) -> None:
    _node_modules()
    start_worker()
    env = {**os.environ, "BROADCASTER_URL": live_server.url, "BROADCASTER_API_KEY": sync_creds.api_key,
           "BROADCASTER_API_SECRET": sync_creds.api_secret}
    assert NODE is not None
    done = subprocess.run([NODE, "--test", "--test-reporter=spec", "tests/node/"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    # the spec reporter's summary: every test file ran, nothing failed or was skipped
    summary = dict(re.findall(r"^\S* ?(tests|pass|fail|skipped|todo) (\d+)$", done.stdout, re.M))
    assert summary.get("fail") == "0" and summary.get("skipped") == "0", done.stdout[-3000:]
    assert int(summary.get("pass", "0")) >= 4, done.stdout[-3000:]  # 2 stream-chat, 2 node-sdk tests

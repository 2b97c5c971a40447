"""`@pytest.mark.exclusive`: a test with a wall-clock bound that an issue names (another
tenant's campaign within 2 s, events within 2 s, a delayed send within 1 s of due) runs alone.

Under pytest-xdist the suite's processes share the cores; such a bound measures the service,
not whatever the other process runs beside it. An exclusive test takes a lock every other test
holds shared, so the other processes wait at the start of their next test until it is done. A
turnstile in front of the shared lock lets a waiting exclusive test in before new shared
holders (without it, back-to-back tests of the other process could starve it). Without xdist
there is one process and nothing to take. Tests marked `slow` are collected first.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import IO

import pytest


def _lock(stack: ExitStack, path: Path, how: int) -> None:
    f: IO[bytes] = stack.enter_context(open(path, "ab"))  # noqa: SIM115
    fcntl.flock(f.fileno(), how)
    stack.callback(fcntl.flock, f.fileno(), fcntl.LOCK_UN)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if not run:
        yield
        return
    base = Path(tempfile.gettempdir()) / f"broadcaster-tests-{run}"
    with ExitStack() as stack:
        if item.get_closest_marker("exclusive") is not None:
            _lock(stack, base.with_suffix(".turnstile"), fcntl.LOCK_EX)
            _lock(stack, base.with_suffix(".lock"), fcntl.LOCK_EX)
        else:
            with ExitStack() as gate:  # passes only while no exclusive test holds or waits
                _lock(gate, base.with_suffix(".turnstile"), fcntl.LOCK_EX)
            _lock(stack, base.with_suffix(".lock"), fcntl.LOCK_SH)
        yield


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked slow (minutes of real time by design) go first: under xdist one process
    starts on them while the other takes the rest, instead of one left alone at the end."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)

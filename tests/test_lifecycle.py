"""Campaign state machine (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from broadcaster import lifecycle
from broadcaster.errors import ApiError

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(("action", "status", "to"), [
    ("fire", "scheduled", "in_progress"), ("stop", "scheduled", "stopped"), ("stop", "in_progress", "stopped"),
    ("stop", "paused", "stopped"), ("pause", "in_progress", "paused"), ("resume", "paused", "in_progress"),
    ("complete", "in_progress", "completed"),
])
def test_legal(action: str, status: str, to: str) -> None:
    assert lifecycle.after(action, status) == to


@pytest.mark.parametrize(("action", "status"), [
    ("start", "scheduled"), ("start", "completed"), ("start", "stopped"), ("stop", "draft"),
    ("stop", "completed"), ("pause", "paused"), ("resume", "in_progress"), ("update", "in_progress"),
    ("delete", "in_progress"), ("delete", "paused"),
])
def test_illegal_names_status(action: str, status: str) -> None:
    with pytest.raises(ApiError) as e:
        lifecycle.check(action, status)
    assert e.value.status == 400 and repr(status) in e.value.message


def test_start_times() -> None:
    assert lifecycle.start_status(NOW, None) == "in_progress"
    assert lifecycle.start_status(NOW, NOW - timedelta(seconds=1)) == "in_progress"
    assert lifecycle.start_status(NOW, NOW + timedelta(seconds=1)) == "scheduled"
    with pytest.raises(ApiError, match="stop_at"):
        lifecycle.check_start_times(NOW, None, NOW - timedelta(seconds=1))
    lifecycle.check_start_times(NOW, NOW + timedelta(hours=2), NOW + timedelta(hours=1))


def test_progress_and_rate() -> None:
    assert lifecycle.progress(50, 100, True, "in_progress") == 0.5
    assert lifecycle.progress(100, 100, False, "in_progress") == 0.99
    assert lifecycle.progress(0, 0, True, "completed") == 1.0
    assert lifecycle.send_rate(1000, NOW, NOW + timedelta(seconds=4)) == 250.0

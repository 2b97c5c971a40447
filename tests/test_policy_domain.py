"""Delivery policy's rules (broadcaster/domain/policy.py, pure): zones, quiet hours across
midnight and DST, local wall-clock instants; and the frequency caps' statement."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from broadcaster.domain import policy
from broadcaster.errors import ApiError
from broadcaster.store import policy as store

AMS = ZoneInfo("Europe/Amsterdam")


def test_quiet_hours_spanning_midnight_end_at_the_next_local_morning() -> None:
    q = policy.parse_quiet({"start": "22:00", "end": "07:00"})
    at = datetime(2026, 12, 1, 22, 30, tzinfo=UTC)  # 23:30 in Amsterdam (CET)
    assert policy.quiet_until(q, at, AMS) == datetime(2026, 12, 2, 6, 0, tzinfo=UTC)  # 07:00 CET
    early = datetime(2026, 12, 2, 5, 0, tzinfo=UTC)  # 06:00 CET: still quiet, same morning
    assert policy.quiet_until(q, early, AMS) == datetime(2026, 12, 2, 6, 0, tzinfo=UTC)
    assert policy.quiet_until(q, datetime(2026, 12, 2, 6, 0, tzinfo=UTC), AMS) is None  # 07:00: over
    assert policy.quiet_until(q, datetime(2026, 12, 1, 12, 0, tzinfo=UTC), AMS) is None


def test_quiet_hours_within_a_day_and_across_the_spring_forward_night() -> None:
    q = policy.parse_quiet({"start": "12:00", "end": "14:00"})
    assert policy.quiet_until(q, datetime(2026, 7, 1, 10, 30, tzinfo=UTC), AMS) == datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    night = policy.parse_quiet({"start": "01:00", "end": "03:00"})
    # 29 March 2026: 02:00 CET jumps to 03:00 CEST; at 01:30 CET quiet ends at 03:00 CEST = 01:00 UTC
    assert policy.quiet_until(night, datetime(2026, 3, 29, 0, 30, tzinfo=UTC), AMS) == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)


def test_wall_clock_instants_per_zone_and_the_earliest() -> None:
    nine = datetime(2026, 12, 2, 9, 0)
    tokyo, ny = ZoneInfo("Asia/Tokyo"), ZoneInfo("America/New_York")
    assert policy.wall_instant(nine, tokyo) == datetime(2026, 12, 2, 0, 0, tzinfo=UTC)
    assert policy.wall_instant(nine, ny) == datetime(2026, 12, 2, 14, 0, tzinfo=UTC)
    assert policy.earliest_instant(nine, [ny, tokyo, policy.UTC_ZONE]) == datetime(2026, 12, 2, 0, 0, tzinfo=UTC)
    assert policy.zone_of("Not/A_Zone", ny) is ny and policy.zone_of(None, ny) is ny
    assert policy.zone_of("Asia/Tokyo", ny) == tokyo


async def test_caps_count_the_ledgers_counted_sends_inside_each_sliding_period(pool: Any) -> None:
    """store/policy.capped: a user is capped when some cap already has `max` counted sends
    (ledger rows' capped_at, and kept ones of deleted campaigns) within its period."""
    caps = [(1, 12 * 3600.0), (3, 7 * 86400.0)]
    now = datetime(2026, 12, 1, 12, tzinfo=UTC)
    sends = {"a": [now - timedelta(hours=13)], "b": [now - timedelta(hours=11)],
             "c": [now - timedelta(days=d) for d in (1, 2, 3)],
             "d": [now - timedelta(days=8), now - timedelta(days=1), now - timedelta(days=2)]}
    rows = [(f"k{n}", u, at) for u, ats in sends.items() for n, at in enumerate(ats)]
    await pool.executemany(
        "INSERT INTO campaign_recipients (app_id, campaign_id, target_id, user_id, status, sent_at, capped_at)"
        " VALUES (7, $1, $2, $2, 'sent', $3, $3)", rows)
    # an uncounted send (made while the app had no caps) and another app's sends count for nothing
    await pool.execute("INSERT INTO campaign_recipients (app_id, campaign_id, target_id, user_id, status, sent_at)"
                       " VALUES (7, 'k9', 'a', 'a', 'sent', $1)", now - timedelta(hours=1))
    await pool.execute("INSERT INTO campaign_recipients (app_id, campaign_id, target_id, user_id, status, sent_at,"
                       " capped_at) VALUES (8, 'k0', 'new', 'new', 'sent', $1, $1)", now - timedelta(hours=1))
    async with pool.acquire() as conn, conn.transaction():
        assert await store.capped(conn, 7, ["a", "b", "c", "d", "new"], now, caps) == {"b", "c"}
    # a deleted campaign's counted sends keep counting
    await pool.execute("INSERT INTO policy_kept (app_id, user_id, at) VALUES (7, 'a', $1)", now - timedelta(hours=2))
    async with pool.acquire() as conn, conn.transaction():
        assert await store.capped(conn, 7, ["a", "d", "new"], now, caps) == {"a"}
        assert await store.capped(conn, 7, ["a", "d", "new"], now, [(3, 7 * 86400.0)]) == set()


@pytest.mark.parametrize("raw", [{"start": "7:00", "end": "08:00"}, {"start": "07:00"}, {"start": "07:00", "end": "07:00"},
                                 {"start": "07:00", "end": "08:00", "tz": "x"}, "22-07"])
def test_bad_quiet_hours_are_refused(raw: object) -> None:
    with pytest.raises(ApiError) as e:
        policy.parse_quiet(raw)
    assert "quiet_hours" in e.value.message

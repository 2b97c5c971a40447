"""The settings issue 15's 5M runs called for: the campaign tables vacuum in fixed steps and
analyze less often (migration 0140) and the embedded PostgreSQL checkpoints by time, not every gigabyte of WAL."""

from __future__ import annotations

import os
from typing import Any

import pytest

from broadcaster import devstack

CAMPAIGN_TABLES = ("channels", "members", "messages", "campaign_recipients")


async def test_campaign_tables_vacuum_every_200k_inserted_rows_and_analyze_at_half_again(pool: Any) -> None:
    rows = await pool.fetch(
        "SELECT c.relname, o.option_name, o.option_value FROM pg_class c, pg_options_to_table(c.reloptions) o"
        " WHERE c.relname = ANY($1::text[]) AND c.relkind = 'r'", list(CAMPAIGN_TABLES))
    got = {(r["relname"], r["option_name"]): r["option_value"] for r in rows}
    for t in CAMPAIGN_TABLES:
        assert got.get((t, "autovacuum_vacuum_insert_threshold")) == "200000", (t, got)
        assert got.get((t, "autovacuum_vacuum_insert_scale_factor")) == "0.01", (t, got)
        assert got.get((t, "autovacuum_analyze_scale_factor")) == "0.5", (t, got)
    # the audience, copied once and read once, is not vacuumed for its inserts (0181)
    assert await pool.fetchval(
        "SELECT o.option_value FROM pg_class c, pg_options_to_table(c.reloptions) o WHERE c.relname = 'campaign_audience'"
        " AND c.relkind = 'r' AND o.option_name = 'autovacuum_vacuum_insert_threshold'") == "-1"
    # the other tables keep the server's defaults
    assert not await pool.fetchval("SELECT reloptions FROM pg_class WHERE relname = 'users' AND relkind = 'r'")


@pytest.mark.skipif(bool(os.environ.get("BROADCASTER_TEST_DATABASE_URL") or os.environ.get("BROADCASTER_EMBEDDED_PG_CONF")),
                    reason="an external server's or overridden settings")
async def test_embedded_postgres_runs_with_the_fanout_tuning(pool: Any) -> None:
    want = devstack.tuning(16 * 2**30)
    for name in ("max_wal_size", "min_wal_size", "checkpoint_timeout", "wal_init_zero", "bgwriter_lru_maxpages"):
        shown = await pool.fetchval(f"SHOW {name}")
        assert shown == want[name], (name, shown, want[name])


def test_the_tools_servers_look_for_autovacuum_work_every_10_s_and_the_tests_do_not() -> None:
    assert devstack.tuning(16 * 2**30, devstack.TOOL_CONF)["autovacuum_naptime"] == "10s"
    assert "autovacuum_naptime" not in devstack.tuning(16 * 2**30)


def test_the_tools_servers_get_a_quarter_of_memory_for_buffers_up_to_8_gb_and_the_tests_2_gb() -> None:
    assert devstack.tool_conf(24 * 2**30)["shared_buffers"] == "6144MB"
    assert devstack.tool_conf(64 * 2**30)["shared_buffers"] == "8192MB"
    assert devstack.tool_conf(24 * 2**30)["autovacuum_naptime"] == "10s"
    assert devstack.tuning(24 * 2**30)["shared_buffers"] == "2048MB"

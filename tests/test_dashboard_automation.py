"""Dashboard automation screen in Chromium: a triggered campaign's trigger and times
triggered, paused/resumed/stopped from the page; a recurring campaign's schedule, next
occurrences and runs with their stats."""

from __future__ import annotations

import asyncio
import re

import asyncpg
from stream_chat.types.segment import SegmentType

from tests.dash_harness import expect, screenshot
from tests.helpers import wait_for


def _campaign(sdk, cid: str) -> dict:
    return sdk.get_campaign(cid)["campaign"]


def test_triggered_campaign_paused_resumed_and_stopped(signed_in_page, sdk, dash_worker):
    page = signed_in_page
    sdk.upsert_users([{"id": "shop"}, {"id": "alice", "name": "Alice"}])
    sdk.create_campaign("thanks", data={
        "name": "Big order thanks", "type": "triggered", "sender_id": "shop",
        "trigger": {"event": "order.completed", "filter": {"data.total": {"$gte": 100}}},
        "create_channels": True, "channel_template": {"type": "messaging"},
        "message_template": {"text": "Thanks, {{ receiver.name }}!"}})
    sdk.start_campaign("thanks")
    sdk.post("events", data={"events": [{"id": "o-1", "type": "order.completed", "user_id": "alice",
                                         "data": {"total": 120}}]})
    wait_for(lambda: _campaign(sdk, "thanks")["stats"]["stats_messages_sent"] == 1, timeout=60)

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Automation").click()
    page.get_by_role("link", name="Triggered").click()
    row = page.locator('tr[data-campaign="thanks"]')
    expect(row).to_contain_text("order.completed")
    expect(row.locator('[data-bind="status"]')).to_have_text("in_progress")
    row.get_by_role("link", name="Big order thanks").click()
    expect(page.locator("#trigger-event")).to_have_text("order.completed")
    expect(page.locator("#times-triggered")).to_have_text("1")
    expect(page.get_by_text('"$gte": 100')).to_be_visible()
    expect(page.locator("#who")).to_have_text("anyone the event names")

    page.get_by_role("button", name="Pause").click()
    expect(page.get_by_role("status")).to_have_text("Paused thanks.")
    expect(page.locator("#status")).to_have_text("paused")
    expect(page.get_by_role("button", name="Pause")).to_have_count(0)
    assert _campaign(sdk, "thanks")["status"] == "paused"
    screenshot(page, "automation-triggered")
    page.get_by_role("link", name="← Triggered campaigns").click()
    expect(page.locator('tr[data-campaign="thanks"] [data-bind="status"]')).to_have_text("paused")
    page.get_by_role("link", name="Big order thanks").click()

    page.get_by_role("button", name="Resume").click()
    expect(page.locator("#status")).to_have_text("in_progress")
    assert _campaign(sdk, "thanks")["status"] == "in_progress"

    page.on("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Stop").click()
    expect(page.locator("#status")).to_have_text("stopped")
    expect(page.get_by_role("button", name="Resume")).to_have_count(0)
    assert _campaign(sdk, "thanks")["status"] == "stopped"


def test_resume_refused_shows_the_apis_message(signed_in_page, sdk, sync_creds, dash_server):
    """A stale page (the campaign stopped meanwhile): the API's 400 is shown, nothing changes."""
    page = signed_in_page
    sdk.upsert_users([{"id": "shop"}])
    sdk.create_campaign("stale", data={"type": "triggered", "sender_id": "shop",
                                       "trigger": {"event": "user.created"}, "message_template": {"text": "hi"}})
    sdk.start_campaign("stale")
    page.goto("/dashboard/automation/stale")
    sdk.stop_campaign("stale")
    page.get_by_role("button", name="Pause").click()
    expect(page.locator("#form-error")).to_contain_text("stopped")
    expect(page.locator("#status")).to_have_text("stopped")


def test_another_apps_campaign_is_a_404(signed_in_page, settings, dash_server):
    from stream_chat import StreamChat

    from tests.conftest import _create_app

    other = asyncio.run(_create_app(settings.database_url, "other-app"))
    theirs = StreamChat(other.api_key, other.api_secret, base_url=dash_server.url)
    theirs.upsert_users([{"id": "shop"}])
    theirs.create_campaign("their-trigger", data={"type": "triggered", "sender_id": "shop",
                                                  "trigger": {"event": "user.created"},
                                                  "message_template": {"text": "hi"}})
    theirs.start_campaign("their-trigger")
    page = signed_in_page
    resp = page.goto("/dashboard/automation/their-trigger")
    assert resp is not None and resp.status == 404
    page.goto("/dashboard/automation?type=triggered")
    expect(page.locator('tr[data-campaign="their-trigger"]')).to_have_count(0)
    token = page.locator('input[name="csrf"]').first.get_attribute("value")
    resp = page.request.post("/dashboard/automation/their-trigger/pause", form={"csrf": token or ""})
    assert resp.status == 404
    assert theirs.get_campaign("their-trigger")["campaign"]["status"] == "in_progress"


def test_recurring_schedule_next_occurrences_and_runs(signed_in_page, sdk, settings, dash_worker):
    page = signed_in_page
    sdk.upsert_users([{"id": "club"}, *({"id": f"m{i}"} for i in range(3))])
    sdk.create_segment(segment_type=SegmentType.USER, segment_id="members", data={"name": "Members"})
    sdk.add_segment_targets("members", ["m0", "m1", "m2"])
    sdk.create_campaign("digest", data={
        "name": "Weekly digest", "type": "recurring", "segment_ids": ["members"], "sender_id": "club",
        "schedule": {"frequency": "weekly", "day_of_week": 0, "time": "09:00", "timezone": "Europe/Amsterdam"},
        "create_channels": True, "channel_template": {"type": "messaging"},
        "message_template": {"text": "This week at the club"}})
    sdk.start_campaign("digest")

    page.goto("/dashboard/automation")
    row = page.locator('tr[data-campaign="digest"]')
    expect(row).to_contain_text("weekly on Monday at 09:00 (Europe/Amsterdam)")
    row.get_by_role("link", name="Weekly digest").click()
    expect(page.locator("#status")).to_have_text("scheduled")
    upcoming = page.locator("#upcoming li")
    expect(upcoming).to_have_count(5)
    for i in range(5):
        expect(upcoming.nth(i)).to_have_text(re.compile(r"^Mon \d{4}-\d\d-\d\d 09:00 CES?T$"))
    expect(page.get_by_text("No runs yet.")).to_be_visible()

    # the tick starts a run when next_run_at has passed (PostgreSQL's clock): make one due
    async def make_due() -> None:
        conn = await asyncpg.connect(settings.database_url)
        try:
            await conn.execute("UPDATE campaigns SET next_run_at = now() - interval '1 second' WHERE id = 'digest'")
        finally:
            await conn.close()

    asyncio.run(make_due())
    wait_for(lambda: sdk.get("campaigns/digest/runs")["runs"] and
             sdk.get("campaigns/digest/runs")["runs"][0]["status"] == "completed", timeout=60)
    page.reload()
    run = page.locator("tbody tr").filter(has=page.get_by_role("link", name="1", exact=True))
    expect(run).to_contain_text("completed")
    expect(run).to_contain_text("3 / 3")
    expect(run.locator("progress")).to_have_attribute("value", "100")
    screenshot(page, "automation-recurring")

    page.get_by_role("button", name="Pause").click()
    expect(page.locator("#status")).to_have_text("paused")
    expect(page.locator("#upcoming")).to_contain_text("None: the series is paused")
    page.get_by_role("button", name="Resume").click()
    expect(page.locator("#status")).to_have_text("scheduled")
    expect(upcoming).to_have_count(5)

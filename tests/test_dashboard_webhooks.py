"""Dashboard webhooks screen in Chromium: the webhook URL set from the page, a delivery a
receiver answered 500 listed as failed and replayed (the receiver then gets it), hooks
validated by the API, secret rotation that never shows a secret, failed list paging."""

from __future__ import annotations

import asyncio

import asyncpg

from broadcaster.plainreceiver import PlainReceiver
from tests.dash_harness import expect, screenshot
from tests.helpers import wait_for


def test_failed_delivery_listed_and_replayed(signed_in_page, sdk, start_worker):
    page = signed_in_page
    receiver = PlainReceiver().start()
    receiver.status = 500
    try:
        # a retry window shorter than the first backoff: the first 500 is final
        start_worker(webhook_retry_hours=0.0001)
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Webhooks").click()
        page.get_by_label("Webhook URL").fill(receiver.url)
        page.get_by_role("group", name="Events sent to the webhook URL").get_by_label("message.new").check()
        page.get_by_role("button", name="Save webhook settings").click()
        expect(page.get_by_role("status")).to_contain_text("Webhook settings saved.")
        expect(page.get_by_role("status")).to_contain_text("signing secret was made for webhook_url")
        assert "whsec_" not in page.content()
        app = sdk.get_app_settings()["app"]
        assert app["webhook_url"] == receiver.url and app["webhook_events"] == ["message.new"]

        # a campaign's message raises message.new (the only event type checked above)
        sdk.upsert_users([{"id": "alice"}, {"id": "bob"}])
        sdk.create_campaign("hello", data={"user_ids": ["bob"], "sender_id": "alice", "create_channels": True,
                                           "channel_template": {"type": "messaging"},
                                           "message_template": {"text": "hello"}})
        sdk.start_campaign("hello")
        failed = wait_for(lambda: sdk.get("webhooks/failed")["webhooks"], timeout=60)
        wid = failed[0]["id"]
        assert {h.webhook_id for h in receiver.snapshot()} == {wid}  # answered 500 (a retry or not)

        page.reload()
        row = page.locator(f'tr[data-webhook="{wid}"]')
        expect(row).to_contain_text("message.new")
        expect(row).to_contain_text("500")
        expect(row).to_contain_text("hello")  # the campaign
        screenshot(page, "webhooks")

        receiver.status = 200
        before = len(receiver.snapshot())
        row.get_by_role("button", name="Replay").click()
        expect(page.get_by_role("status")).to_have_text("Replayed 1 delivery.")
        hits = wait_for(lambda: receiver.snapshot()[before:], timeout=60)
        assert hits[0].webhook_id == wid and hits[0].type == "message.new"
        assert hits[0].body["message"]["text"] == "hello"
        wait_for(lambda: not sdk.get("webhooks/failed")["webhooks"], timeout=60)
        page.reload()
        expect(page.locator("#no-failed")).to_be_visible()
    finally:
        receiver.stop()


def test_hooks_validated_and_secret_rotated_without_showing_it(signed_in_page, sdk):
    page = signed_in_page
    page.goto("/dashboard/webhooks")
    page.get_by_label("Hook URL", exact=True).fill("ftp://files.example.com/in")
    page.get_by_role("button", name="Save webhook settings").click()
    url = page.locator("#f-hook-0-url")
    expect(page.locator("#e-hook-0-url")).to_contain_text("event_hooks[0].webhook_url must be an http or https URL")
    expect(url).to_have_attribute("aria-invalid", "true")
    expect(url).to_have_value("ftp://files.example.com/in")
    assert sdk.get_app_settings()["app"]["event_hooks"] == []

    url.fill("https://hooks.example.com/in")
    page.locator("#f-hook-0-id").fill("orders")
    page.locator('[data-hook="0"]').get_by_label("campaign.completed").check()
    page.get_by_role("button", name="Save webhook settings").click()
    expect(page.get_by_role("status")).to_contain_text("Webhook settings saved.")
    hooks = sdk.get_app_settings()["app"]["event_hooks"]
    assert hooks == [{"id": "orders", "webhook_url": "https://hooks.example.com/in",
                      "event_types": ["campaign.completed"], "enabled": True}]
    expect(page.locator('[data-hook="0"] legend')).to_have_text("Hook orders")

    page.on("dialog", lambda d: d.accept())
    page.get_by_role("row", name="orders").get_by_role("button", name="Rotate secret").click()
    expect(page.get_by_role("status")).to_contain_text("Signing secret of orders rotated (not shown here)")
    expect(page.get_by_role("status")).to_contain_text("the previous one keeps signing until")
    assert "whsec_" not in page.content()

    # removing the hook
    page.locator('[data-hook="0"]').get_by_label("Remove this hook").check()
    page.get_by_role("button", name="Save webhook settings").click()
    expect(page.get_by_role("status")).to_contain_text("Webhook settings saved.")
    assert sdk.get_app_settings()["app"]["event_hooks"] == []


def test_failed_deliveries_page_with_cursors(signed_in_page, settings, sync_creds):
    async def seed() -> None:
        conn = await asyncpg.connect(settings.database_url)
        try:
            await conn.execute(
                "INSERT INTO webhook_deliveries (app_id, event_id, receiver, url, event_type, barrier,"
                " payload, state, failed_at) SELECT $1, i, 'webhook_url', 'http://x/', 'message.new',"
                " false, '{}', 'failed', now() FROM generate_series(1, 23) i", sync_creds.app_id)
        finally:
            await conn.close()

    asyncio.run(seed())
    page = signed_in_page
    page.goto("/dashboard/webhooks")
    rows = page.locator("#failed tbody tr")
    expect(rows).to_have_count(20)
    first = rows.first.get_attribute("data-webhook")
    page.get_by_role("link", name="Next page").click()
    expect(rows).to_have_count(3)
    page.get_by_role("link", name="Previous page").click()
    expect(rows).to_have_count(20)
    expect(rows.first).to_have_attribute("data-webhook", first or "")

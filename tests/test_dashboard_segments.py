"""Dashboard segments screen in Chromium: create, paste ids, upload a CSV in chunks with a
progress bar, browse targets with cursors, delete refused while a campaign uses the segment,
another app's segment is a 404."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta

from stream_chat import StreamChat
from stream_chat.types.segment import SegmentType

from tests.conftest import _create_app
from tests.dash_harness import expect, screenshot


def test_create_segment_by_pasting_ids_then_its_size_shows(signed_in_page, sdk):
    page = signed_in_page
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Segments").click()
    expect(page.get_by_role("heading", name="Segments", exact=True)).to_be_visible()
    page.get_by_label("Name").fill("VIP members")
    page.get_by_label("Id", exact=True).fill("vips")
    page.get_by_role("button", name="Create segment").click()
    expect(page.get_by_role("status")).to_have_text("Segment VIP members created.")
    expect(page.locator("#seg-size")).to_have_text("0")

    # the API's validation, shown next to the field: nothing is added
    page.get_by_label("Paste ids").fill("alice\nnot an id!")
    page.get_by_role("button", name="Add pasted ids").click()
    expect(page.locator("#e-target_ids")).to_contain_text("target_ids")
    expect(page.get_by_label("Paste ids")).to_have_attribute("aria-invalid", "true")
    assert sdk.get_segment("vips")["segment"]["size"] == 0

    page.get_by_label("Paste ids").fill("alice, bob\ncarol\n\nbob")
    page.get_by_role("button", name="Add pasted ids").click()
    expect(page.get_by_role("status")).to_have_text("Added 3 of 4 ids; the segment now has 3.")
    expect(page.locator("#seg-size")).to_have_text("3")
    expect(page.locator("#targets tbody tr")).to_have_count(3)
    expect(page.locator("#targets tbody tr").first).to_contain_text("alice")
    assert sdk.get_segment("vips")["segment"]["size"] == 3
    screenshot(page, "segment")

    page.get_by_role("link", name="← Segments").click()
    row = page.locator('tr[data-segment="vips"]')
    expect(row).to_contain_text("VIP members")
    expect(row.locator('[data-bind="size"]')).to_have_text("3")
    screenshot(page, "segments")


def test_csv_upload_shows_progress_and_lists_the_targets(signed_in_page, sdk):
    page = signed_in_page
    sdk.create_segment(segment_type=SegmentType.USER, segment_id="imported", data={"name": "Imported"})
    n = 25_001  # three calls of at most 10,000 ids
    csv = "user_id,name\n" + "".join(f'u{i:05d},"User, number {i}"\n' for i in range(n))
    page.goto("/dashboard/segments/imported")
    page.get_by_label("Upload a file").set_input_files(
        files=[{"name": "users.csv", "mimeType": "text/csv", "buffer": csv.encode()}])
    page.get_by_label("CSV column").fill("user_id")
    page.get_by_role("button", name="Import the file").click()
    form = page.locator("#upload")
    expect(form).to_have_attribute("data-state", "done")
    bar = page.get_by_label("Upload progress")
    expect(bar).to_have_js_property("max", n)
    expect(bar).to_have_js_property("value", n)
    expect(page.locator("#upload-status")).to_have_text("Done: 25,001 ids in 3 calls, 25,001 new.")
    # refreshed in place, without a reload
    expect(page.locator("#seg-size")).to_have_text("25,001")
    expect(page.locator("#targets tbody tr")).to_have_count(50)
    expect(page.locator("#targets tbody tr").first).to_contain_text("u00000")
    assert sdk.get_segment("imported")["segment"]["size"] == n
    assert sdk.segment(SegmentType.USER, "imported").target_exists("u25000")["target"]["target_id"] == "u25000"

    # cursors: the next page goes on where the first stopped, the previous one comes back
    page.get_by_role("link", name="Next page").click()
    expect(page.locator("#targets tbody tr").first).to_contain_text("u00050")
    page.get_by_role("link", name="Previous page").click()
    expect(page.locator("#targets tbody tr").first).to_contain_text("u00000")

    # a refused chunk (a channel cid in a user segment) stops with the API's message
    page.get_by_label("Upload a file").set_input_files(
        files=[{"name": "bad.txt", "mimeType": "text/plain", "buffer": b"ok-1\nmessaging:general\n"}])
    page.get_by_label("CSV column").fill("")
    page.get_by_role("button", name="Import the file").click()
    expect(form).to_have_attribute("data-state", "error")
    expect(page.locator("#e-file")).to_contain_text("Part 1 of 1 was refused")
    expect(page.locator("#e-file")).to_contain_text("target_ids")
    assert sdk.get_segment("imported")["segment"]["size"] == n


def test_delete_is_refused_while_a_campaign_uses_the_segment(signed_in_page, sdk):
    page = signed_in_page
    sdk.upsert_users([{"id": "sender"}, {"id": "alice"}])
    sdk.create_segment(segment_type=SegmentType.USER, segment_id="busy", data={"name": "Busy"})
    sdk.add_segment_targets("busy", ["alice"])
    sdk.create_campaign("later", data={"segment_ids": ["busy"], "sender_id": "sender",
                                       "message_template": {"text": "hi"}})
    sdk.start_campaign("later", scheduled_for=datetime.now(UTC) + timedelta(days=1))
    page.on("dialog", lambda d: d.accept())
    page.goto("/dashboard/segments/busy")
    page.get_by_role("button", name="Delete segment").click()
    expect(page.locator("#form-error")).to_contain_text("later")
    assert sdk.get_segment("busy")["segment"]["id"] == "busy"

    sdk.stop_campaign("later")
    page.get_by_role("button", name="Delete segment").click()
    expect(page.get_by_role("status")).to_have_text("Segment busy deleted.")
    expect(page).to_have_url(re.compile(r"/dashboard/segments$"))
    expect(page.locator('tr[data-segment="busy"]')).to_have_count(0)


def test_another_apps_segment_is_a_404(signed_in_page, settings, dash_server):
    other = asyncio.run(_create_app(settings.database_url, "other-app"))
    client = StreamChat(other.api_key, other.api_secret, base_url=dash_server.url)
    client.create_segment(segment_type=SegmentType.USER, segment_id="theirs", data={"name": "Theirs"})
    resp = signed_in_page.goto("/dashboard/segments/theirs")
    assert resp is not None and resp.status == 404
    expect(signed_in_page.get_by_role("heading", name="Not found")).to_be_visible()
    signed_in_page.goto("/dashboard/segments")
    token = signed_in_page.locator('input[name="csrf"]').first.get_attribute("value")
    resp = signed_in_page.request.post("/dashboard/segments/theirs/addtargets.json",
                                       data={"target_ids": ["x"]}, headers={"X-CSRF-Token": token})
    assert resp.status == 404 and "theirs" in resp.json()["error"]
    resp = signed_in_page.request.post("/dashboard/segments/theirs/delete", form={"confirmed": "1", "csrf": token})
    assert resp.status == 404
    assert client.get_segment("theirs")["segment"]["size"] == 0

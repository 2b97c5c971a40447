"""The dashboard's campaign screens in Chromium against a live server and a worker (issue 18):
the wizard with its preview, start, live progress to 100 % without reload, pause/resume,
the recipients drill-down; and screenshots of the main screens (docs/screenshots/)."""

from __future__ import annotations

import re

import pytest

from tests.dash_harness import expect, screenshot

USERS = [f"u{i:02d}" for i in range(60)]
LONG_MS = 120_000  # a paced campaign completing on a loaded 2-core machine


@pytest.fixture
def settings(settings):
    # 10 recipients a batch so a paced campaign moves in steps the page can watch
    return settings.with_(batch_size=10)


def _seed(sdk) -> None:
    sdk.upsert_users([{"id": "boss", "name": "The Shop"}, {"id": "alice", "name": "Alice", "tier": "gold"},
                      *({"id": u, "name": f"User {u}"} for u in USERS)])


def test_wizard_preview_start_live_progress_pause_resume_recipients(signed_in_page, sdk, dash_worker):
    page = signed_in_page
    _seed(sdk)
    sdk.update_app_settings(campaign_send_rate=4)  # 61 recipients in batches of 10: ~15 s of sending
    page.on("dialog", lambda d: d.accept())  # the confirm() before pause/resume

    page.get_by_role("link", name="New campaign").click()
    page.get_by_label("Name", exact=True).fill("Winter sale")
    page.get_by_label("a list of user ids").check()
    page.get_by_label("User ids", exact=True).fill("alice\n" + ", ".join(USERS))
    page.get_by_label("Message text").fill("Hi {{ receiver.name }} ({{ receiver.tier | default('new') }}), "
                                           "20% off from {{ sender.name }}")
    page.get_by_label("Sender user id").fill("boss")
    page.get_by_label("Preview for user id").fill("alice")
    expect(page.get_by_test_id("preview")).to_have_text("Hi Alice (gold), 20% off from The Shop")
    page.get_by_label("Preview for user id").fill("u07")  # the preview follows the chosen user
    expect(page.get_by_test_id("preview")).to_have_text("Hi User u07 (new), 20% off from The Shop")
    screenshot(page, "campaign-wizard")
    page.get_by_role("button", name="Save and review").click()

    expect(page.get_by_role("heading", name="Winter sale")).to_be_visible()
    expect(page.get_by_role("status")).to_have_text("Saved. Review it below, then start it.")
    expect(page.locator("[data-bind=status]")).to_have_text("draft")
    cid = page.url.rsplit("/", 1)[1]
    screenshot(page, "campaign-review")
    page.get_by_role("button", name="Start").click()
    expect(page.get_by_role("status")).to_have_text("Campaign started.")

    page.get_by_role("button", name="Pause").click()
    expect(page.get_by_role("status")).to_have_text("Campaign paused.")
    expect(page.locator("[data-bind=status]")).to_have_text("paused")
    assert sdk.get_campaign(cid)["campaign"]["status"] == "paused"
    page.get_by_role("button", name="Resume").click()
    expect(page.get_by_role("status")).to_have_text("Campaign resumed.")

    # from here on the page is never reloaded: the marker would be gone
    page.evaluate("window.__noReload = 'still here'")
    polls = []
    page.on("response", lambda r: polls.append(r.url) if "/progress.json" in r.url else None)
    bar = page.get_by_role("progressbar", name="Progress")
    expect(bar).to_have_attribute("value", "100", timeout=LONG_MS)
    expect(page.locator("[data-bind=status]")).to_have_text("completed")
    expect(page.locator("[data-bind=sent_total]")).to_have_text("61 / 61")
    # once done, the funnel and the buttons are fetched again and swapped in, still no reload
    expect(page.locator("body")).to_have_attribute("data-refreshed", "1")
    expect(page.get_by_role("img", name="Funnel")).to_contain_text("Sent61 (100.0 %)")
    expect(page.get_by_role("button", name="Pause")).to_have_count(0)
    expect(page.get_by_role("button", name="Delete")).to_be_visible()
    assert page.evaluate("window.__noReload") == "still here"
    assert polls, "the progress came by polling"
    screenshot(page, "campaign-detail")

    page.get_by_role("link", name="Recipients").click()
    expect(page.get_by_role("heading", name="Recipients")).to_be_visible()
    page.get_by_role("navigation", name="Filter by status").get_by_role("link", name="sent", exact=True).click()
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(50)
    expect(rows.first).to_contain_text("alice")
    screenshot(page, "campaign-recipients")
    page.get_by_role("link", name="Next page").click()
    expect(rows).to_have_count(11)
    expect(rows.last).to_contain_text("u59")
    page.get_by_role("link", name="Previous page").click()
    expect(rows).to_have_count(50)

    page.get_by_role("link", name="Campaigns", exact=True).first.click()
    row = page.locator(f'tr[data-row="{cid}"]')
    expect(row.get_by_role("progressbar")).to_have_attribute("value", "100")
    expect(row).to_contain_text("61 / 61")
    screenshot(page, "campaigns")


def test_wizard_shows_the_apis_error_next_to_the_field(signed_in_page, sdk):
    page = signed_in_page
    _seed(sdk)
    page.goto("/dashboard/campaigns/new")
    expect(page.get_by_label("Time (HH:MM)")).to_be_hidden()  # one-time: no schedule fields
    page.get_by_label("Type", exact=True).select_option("recurring")
    expect(page.get_by_label("Time (HH:MM)")).to_be_visible()
    expect(page.get_by_label("Trigger event")).to_be_hidden()
    page.get_by_label("Type", exact=True).select_option("triggered")
    expect(page.get_by_label("Trigger event")).to_be_visible()
    page.get_by_label("Type", exact=True).select_option("one_time")
    page.get_by_label("a list of user ids").check()
    page.get_by_label("User ids", exact=True).fill("alice")
    page.get_by_label("Message text").fill("Hi {{ receiver.name ")
    page.get_by_label("Preview for user id").fill("alice")
    expect(page.get_by_test_id("preview")).to_contain_text("message_template.text has a template syntax error")
    page.get_by_label("Sender user id").fill("ghost")
    page.get_by_role("button", name="Save and review").click()
    text = page.get_by_label("Message text")
    expect(text).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#e-text")).to_contain_text("message_template.text has a template syntax error at line 1")
    expect(text).to_have_value("Hi {{ receiver.name ")  # what was typed stays
    page.get_by_label("Message text").fill("Hi {{ receiver.name }}")
    page.get_by_role("button", name="Save and review").click()
    expect(page.locator("#e-sender_id")).to_have_text("sender_id 'ghost' is not an existing user")
    assert sdk.query_campaigns(filter_conditions={})["campaigns"] == []  # nothing was created


def test_screens_fit_a_390px_phone(signed_in_page, sdk):
    page = signed_in_page
    _seed(sdk)
    sdk.create_campaign("phone", data={"name": "Phone check", "sender_id": "boss", "user_ids": ["alice"],
                                       "message_template": {"text": "hi"}})
    page.set_viewport_size({"width": 390, "height": 844})
    for path, name in (("/dashboard/campaigns", "campaigns-390"), ("/dashboard/campaigns/phone", "campaign-detail-390"),
                       ("/dashboard/campaigns/new", None)):
        page.goto(path)
        expect(page.get_by_role("button", name="Sign out")).to_be_visible()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, (path, width)
        if name:
            screenshot(page, name)
    page.goto("/dashboard/signin?next=/dashboard/campaigns")
    expect(page).to_have_url(re.compile("/dashboard/signin"))


def test_recipients_page_excludes_a_pending_recipient(signed_in_page, sdk, start_worker):
    """Started with no worker running, every recipient is pending: the page offers Exclude on
    each, asks first, and the excluded one is skipped/excluded and never gets the message
    once a worker runs the campaign; sent recipients offer no Exclude."""
    page = signed_in_page
    _seed(sdk)
    page.on("dialog", lambda d: d.accept())
    ids = USERS[:12]
    cid = sdk.create_campaign(data={"name": "Excl", "sender_id": "boss", "user_ids": ids, "create_channels": True,
                                    "channel_template": {"type": "messaging"},
                                    "message_template": {"text": "Hi {{ receiver.name }}"}})["campaign"]["id"]
    sdk.start_campaign(cid)
    page.goto(f"/dashboard/campaigns/{cid}/recipients?status=pending")
    expect(page.locator("tbody tr")).to_have_count(12)
    page.get_by_role("button", name="Exclude u03").click()
    expect(page.get_by_role("status")).to_have_text("u03 excluded: they will not receive this campaign.")
    expect(page.locator("tbody tr")).to_have_count(11)  # back on the pending filter
    expect(page.get_by_role("button", name="Exclude u03")).to_have_count(0)

    start_worker()
    page.goto(f"/dashboard/campaigns/{cid}")
    expect(page.locator("[data-bind=status]")).to_have_text("completed", timeout=LONG_MS)
    page.goto(f"/dashboard/campaigns/{cid}/recipients?status=skipped")
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("u03")
    expect(rows.first).to_contain_text("excluded")
    expect(page.get_by_role("button", name=re.compile("^Exclude"))).to_have_count(0)  # completed: nothing to exclude
    got = {r["target_id"]: r["status"] for r in sdk.get("campaigns/" + cid + "/recipients", {"limit": 50})["recipients"]}
    assert got == {u: ("skipped" if u == "u03" else "sent") for u in ids}
    chans = sdk.query_channels({"type": "messaging", "members": {"$in": ["u03"]}})["channels"]
    assert all(m.get("campaign_id") != cid for ch in chans for m in ch.get("messages", []))


def test_exclude_of_a_recipient_not_in_the_audience_flashes_the_apis_reason(signed_in_page, sdk):
    page = signed_in_page
    _seed(sdk)
    cid = sdk.create_campaign(data={"name": "Two", "sender_id": "boss", "user_ids": ["u01", "u02"],
                                    "message_template": {"text": "Hi"}, "create_channels": True,
                                    "channel_template": {"type": "messaging"}})["campaign"]["id"]
    sdk.start_campaign(cid)  # no worker: both stay pending
    page.goto(f"/dashboard/campaigns/{cid}/recipients")
    expect(page.get_by_role("button", name=re.compile("^Exclude"))).to_have_count(2)
    # a hand-made POST (no button offers it) for an id outside the fixed audience
    resp = page.request.post(f"/dashboard/campaigns/{cid}/recipients/zz-not-in-it/exclude",
                             form={"confirmed": "1", "csrf": page.evaluate("window.broadcasterCsrf()")})
    assert resp.ok and resp.url.endswith(f"/dashboard/campaigns/{cid}/recipients")
    assert f"Could not exclude: recipient &#39;zz-not-in-it&#39; of campaign &#39;{cid}&#39;" in resp.text()
    got = {r["target_id"]: r["status"] for r in sdk.get(f"campaigns/{cid}/recipients", {"limit": 50})["recipients"]}
    assert got == {"u01": "pending", "u02": "pending"}

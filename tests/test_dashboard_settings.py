"""Dashboard app settings in Chromium: a bad value shows the API's message next to its field
and changes nothing; good values are saved through PATCH /app; the rate limits are listed."""

from __future__ import annotations

from tests.dash_harness import expect, screenshot


def _save(page) -> None:
    page.get_by_role("button", name="Save settings").click()


def test_bad_values_show_the_apis_error_next_to_the_field(signed_in_page, sdk):
    page = signed_in_page
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Settings").click()
    rate = page.get_by_label("Campaign send rate (messages per second)")
    expect(rate).to_have_value("0")
    before = sdk.get_app_settings()["app"]

    rate.fill("-5")
    _save(page)
    expect(page.locator("#e-campaign_send_rate")).to_have_text("campaign_send_rate must be a number >= 0")
    expect(rate).to_have_attribute("aria-invalid", "true")
    expect(rate).to_have_value("-5")  # what was typed stays, to be corrected

    rate.fill("250")
    page.get_by_label("Attribution window").fill("a week")
    _save(page)
    expect(page.locator("#e-attribution_window")).to_contain_text("attribution_window must be a duration")
    expect(page.locator("#e-campaign_send_rate")).to_have_count(0)
    assert sdk.get_app_settings()["app"] == before  # one PATCH: refused whole

    page.get_by_label("Attribution window").fill("3d")
    _save(page)
    expect(page.get_by_role("status")).to_have_text("Settings saved.")
    app = sdk.get_app_settings()["app"]
    assert app["campaign_send_rate"] == 250 and app["attribution_window"] == "3d"
    expect(page.get_by_label("Campaign send rate (messages per second)")).to_have_value("250")
    expect(page.locator('#rate-limits tr[data-op="CreateCampaign"]')).to_contain_text("1,000")


def test_policy_settings_are_validated_and_saved(signed_in_page, sdk):
    page = signed_in_page
    page.goto("/dashboard/settings")
    tz = page.get_by_label("Default timezone")
    tz.fill("Mars/Olympus_Mons")
    _save(page)
    expect(page.locator("#e-default_timezone")).to_contain_text("default_timezone")
    expect(tz).to_have_attribute("aria-invalid", "true")

    tz.fill("Europe/Amsterdam")
    page.get_by_label("Quiet from").fill("25:00")
    page.get_by_label("Quiet until").fill("07:00")
    _save(page)
    expect(page.locator("#e-quiet_start")).to_contain_text("quiet_hours.start")

    page.get_by_label("Quiet from").fill("22:00")
    page.locator("#f-cap-0-max").fill("0")
    page.locator("#f-cap-0-period").fill("1d")
    _save(page)
    expect(page.locator("#e-cap-0-max")).to_contain_text("frequency_caps[0].max")
    assert sdk.get_app_settings()["app"]["default_timezone"] is None

    page.locator("#f-cap-0-max").fill("3")
    _save(page)
    expect(page.get_by_role("status")).to_have_text("Settings saved.")
    app = sdk.get_app_settings()["app"]
    assert app["default_timezone"] == "Europe/Amsterdam"
    assert app["quiet_hours"] == {"start": "22:00", "end": "07:00"}
    assert app["frequency_caps"] == [{"max": 3, "period": "1d"}]
    expect(page.locator("#f-cap-0-max")).to_have_value("3")
    expect(page.locator("#f-cap-1-max")).to_have_value("")  # the empty row to add another
    screenshot(page, "settings")

    # an emptied row removes the cap
    page.locator("#f-cap-0-max").fill("")
    page.locator("#f-cap-0-period").fill("")
    _save(page)
    expect(page.get_by_role("status")).to_have_text("Settings saved.")
    assert sdk.get_app_settings()["app"]["frequency_caps"] is None


def test_screens_fit_a_390px_phone(signed_in_page, sdk):
    """Nothing wider than the viewport (wide tables scroll inside their own box)."""
    from stream_chat.types.segment import SegmentType

    sdk.create_segment(segment_type=SegmentType.USER, segment_id="phone", data={"name": "Phone"})
    page = signed_in_page
    page.set_viewport_size({"width": 390, "height": 844})
    for path in ("/dashboard/segments", "/dashboard/segments/phone", "/dashboard/automation",
                 "/dashboard/webhooks", "/dashboard/settings"):
        page.goto(path)
        expect(page.get_by_role("button", name="Sign out")).to_be_visible()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, (path, width)


def test_a_form_post_without_the_csrf_token_is_refused_and_changes_nothing(signed_in_page, sdk):
    page = signed_in_page
    page.goto("/dashboard/settings")
    # the browser's own session cookie, but not the page's token
    resp = page.request.post("/dashboard/settings", form={"campaign_send_rate": "7", "attribution_window": "1d"})
    assert resp.status == 403
    resp = page.request.post("/dashboard/settings", form={"campaign_send_rate": "7", "attribution_window": "1d",
                                                           "csrf": "not-the-token"})
    assert resp.status == 403
    resp = page.request.post("/dashboard/webhooks", form={"webhook_url": "https://evil.example.com/"})
    assert resp.status == 403
    app = sdk.get_app_settings()["app"]
    assert app["campaign_send_rate"] == 0 and app["webhook_url"] == ""


def test_an_item_error_lands_on_the_form_row_it_came_from():
    from broadcaster.dashboard.apiform import row_error

    msg = "frequency_caps[1].period must be '<n>h' or '<n>d' (at most 366 days), got 'x'"
    # row 1 of the form was left empty, so the API's item 1 is the form's row 2
    assert row_error(msg, "frequency_caps", [0, 2], "cap", {"period": "period"}, "max") == {"cap-2-period": msg}
    assert row_error("frequency_caps[0] must be an object", "frequency_caps", [3], "cap", {}, "max") == \
        {"cap-3-max": "frequency_caps[0] must be an object"}
    assert row_error("event_hooks[5].id is used twice", "event_hooks", [0], "hook", {"id": "id"}, "url") is None
    assert row_error("campaign_send_rate must be a number >= 0", "frequency_caps", [0], "cap", {}, "max") is None

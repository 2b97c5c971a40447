"""Dashboard sign-in, session cookie, CSRF and sign-out (issue 18 item 2): in Chromium and
over plain HTTP."""

from __future__ import annotations

import re

from broadcaster.app import create_app
from tests.dash_harness import CSRF_RE, expect, sign_in, sign_in_http


def test_sign_in_cookie_sign_out_and_refused_after(dash_page, sync_creds):
    page = dash_page
    page.goto("/dashboard/campaigns")
    expect(page).to_have_url(re.compile(r"/dashboard/signin\?next=(%2F|/)dashboard(%2F|/)campaigns$"))
    sign_in(page, sync_creds)
    expect(page).to_have_url(re.compile(r"/dashboard/campaigns$"))
    expect(page.get_by_role("heading", name="Campaigns")).to_be_visible()
    expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Campaigns")).to_have_attribute(
        "aria-current", "page")
    assert sync_creds.api_secret not in page.content()
    cookie = next(c for c in page.context.cookies() if c["name"] == "bc_dash")
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/dashboard" and cookie["secure"] is False  # plain http here
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("status")).to_have_text("Signed out.")
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    page.goto("/dashboard/campaigns")
    expect(page).to_have_url(re.compile(r"/dashboard/signin"))
    # the old cookie, replayed after sign-out, is refused: its session row is gone
    page.context.add_cookies([{**cookie, "sameSite": "Strict"}])
    page.goto("/dashboard/campaigns")
    expect(page).to_have_url(re.compile(r"/dashboard/signin"))


def test_wrong_secret_shows_the_error_next_to_the_field_and_echoes_nothing(dash_page, sync_creds):
    page = dash_page
    page.goto("/dashboard/signin")
    page.get_by_label("API key").fill(sync_creds.api_key)
    page.get_by_label("API secret").fill("not-the-secret-xyz")
    page.get_by_role("button", name="Sign in").click()
    secret = page.get_by_label("API secret")
    expect(secret).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#e-api_secret")).to_have_text("api_key or api_secret is wrong")
    expect(page.get_by_label("API key")).to_have_value(sync_creds.api_key)
    assert "not-the-secret-xyz" not in page.content()
    assert not [c for c in page.context.cookies() if c["name"] == "bc_dash"]


async def _sessions(pool) -> int:
    return await pool.fetchval("SELECT count(*) FROM dashboard_sessions")


async def test_state_change_without_the_csrf_token_is_refused_and_changes_nothing(client, creds, pool):
    csrf = await sign_in_http(client, creds)
    assert await _sessions(pool) == 1
    for data, headers in (({}, {}), ({"csrf": "wrong"}, {}), ({}, {"X-CSRF-Token": "wrong"})):
        r = await client.post("/dashboard/signout", data=data, headers=headers, allow_redirects=False)
        assert r.status == 403, (data, headers)
        assert "CSRF token missing or wrong" in await r.text()
        assert await _sessions(pool) == 1  # still signed in: nothing happened
    r = await client.post("/dashboard/signout", data={"csrf": csrf}, allow_redirects=False)
    assert r.status == 303 and r.headers["Location"] == "/dashboard/signin"
    assert await _sessions(pool) == 0
    r = await client.get("/dashboard/campaigns", allow_redirects=False)
    assert r.status == 303 and r.headers["Location"].startswith("/dashboard/signin")


async def test_sign_in_form_needs_its_own_csrf_token(client, creds, pool):
    await client.get("/dashboard/signin")  # sets the pre-session cookie
    r = await client.post("/dashboard/signin", data={"api_key": creds.api_key, "api_secret": creds.api_secret},
                          allow_redirects=False)
    assert r.status == 403
    assert await _sessions(pool) == 0


async def test_cookie_is_secure_behind_a_trusted_https_proxy(aiohttp_client, settings, creds):
    for trusted, secure in ((True, True), (False, False)):
        client = await aiohttp_client(create_app(settings.with_(trust_forwarded_proto=trusted)))
        h = {"X-Forwarded-Proto": "https"}
        r = await client.get("/dashboard/signin", headers=h)
        token = CSRF_RE.search(await r.text()).group(1)
        # sent by hand: the client's cookie jar keeps a Secure cookie away from http://
        r = await client.post("/dashboard/signin", allow_redirects=False,
                              headers={**h, "Cookie": f"bc_dash_pre={token}"}, data={
            "api_key": creds.api_key, "api_secret": creds.api_secret, "csrf": token})
        assert r.status == 303
        cookie = next(v for k, v in r.headers.items() if k == "Set-Cookie" and v.startswith("bc_dash="))
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/dashboard" in cookie
        assert ("Secure" in cookie) is secure, cookie


async def test_expired_session_is_refused(client, creds, pool):
    await sign_in_http(client, creds)
    await pool.execute("UPDATE dashboard_sessions SET expires_at = now() - interval '1 second'")
    r = await client.get("/dashboard/campaigns", allow_redirects=False)
    assert r.status == 303 and r.headers["Location"].startswith("/dashboard/signin")
    r = await client.get("/dashboard/campaigns.json?ids=x")
    assert r.status == 401


def test_keyboard_only_sign_in_with_visible_focus(dash_page, sync_creds):
    page = dash_page
    page.goto("/dashboard/signin")

    def focused() -> str:
        return page.evaluate("(() => { const e = document.activeElement;"
                             " return (e.id || e.textContent || e.tagName).trim(); })()")

    page.keyboard.press("Tab")
    assert focused() == "Skip to content"
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    assert focused() == "f-api_key"
    # :focus-visible draws the outline when the keyboard moved the focus
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") == "solid"
    page.keyboard.type(sync_creds.api_key)
    page.keyboard.press("Tab")
    assert focused() == "f-api_secret"
    page.keyboard.type(sync_creds.api_secret)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Campaigns")).to_be_visible()
    for _ in range(3):
        page.keyboard.press("Tab")
    assert focused() == "Campaigns"  # skip link, brand, then the nav
    page.keyboard.press("Tab")
    assert focused() == "Segments"

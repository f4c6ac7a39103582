"""Signing in and out with an API key: the key goes in a POST body only, never into the URL, the history
or the browser's storage; a read-only key sees everything and its buttons that would change something are
disabled."""

import pytest

pytestmark = pytest.mark.slow


def test_sign_in_and_out_keeps_the_key_out_of_the_page(pages, stack):
    page = pages.open("/?status=succeeded", key=None)
    page.wait_for_url("**/signin?next=*")
    key = stack.keys["admin"]
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/?status=succeeded")
    page.get_by_text("Signed in as").wait_for()
    assert page.locator("#who .name").text_content() == "Ada (admin)"
    page.get_by_role("table", name="Runs").wait_for()
    storage = page.evaluate("() => JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage), "
                            "document.cookie, location.href, history.length])")
    assert key not in storage and key not in page.content()
    cookies = page.context.cookies()
    session = next(c for c in cookies if c["name"] == "dlserve_session")
    assert session["httpOnly"] and session["sameSite"] == "Strict"
    pages.shot(page, "-signed-in")

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/signin")
    assert not [c for c in page.context.cookies() if c["name"] == "dlserve_session"]
    page.goto("/models")
    page.wait_for_url("**/signin?next=%2Fmodels")


def test_a_wrong_key_is_refused_next_to_the_field(pages):
    pages.allow("status of 401")
    page = pages.open("/signin", key=None)
    page.get_by_label("API key").fill("dls_nothere_xxxxxxxxxxxxxxxxxxxxxxxx")
    page.get_by_role("button", name="Sign in").click()
    page.locator(".field .error").filter(has_text="not valid").wait_for()
    assert page.get_by_label("API key").input_value() == ""

"""A read-only key sees everything and changes nothing: its buttons that would are disabled (and the API
refuses them anyway)."""

import pytest

pytestmark = pytest.mark.slow


def test_a_read_key_sees_disabled_buttons(pages, stack, trained):
    page = pages.open("/models/try-fraud", key="read")
    page.get_by_text("Signed in as").wait_for()
    assert page.locator("#who .badge").text_content() == "read"
    aliases = page.locator('#aliases tr[data-alias="production"]')
    assert aliases.get_by_role("button", name="Move").is_disabled()
    assert aliases.get_by_role("button", name="Roll back").is_disabled()
    assert page.get_by_role("button", name="Set alias").is_disabled()
    assert page.get_by_role("link", name="Try it").count() == 1  # the nav; no "Try it" button: no predict scope

    run = trained["fraud"]["id"]
    page.goto(f"/runs/{run}")
    page.get_by_role("heading", name="Tags and note").wait_for()
    assert page.get_by_role("button", name="Save note").is_disabled()
    assert page.get_by_placeholder("add a tag, then Enter").is_disabled()
    files = page.locator("#artifacts-list")
    files.get_by_role("link", name="model.onnx").wait_for()  # what is served may be read
    assert files.get_by_role("link", name="last.pt").count() == 0  # a checkpoint is a pickle: train scope
    assert "needs the train scope" in files.locator("tr", has_text="last.pt").text_content()
    pages.shot(page, "-run")

    page.goto("/new?task=fraud")
    page.get_by_role("button", name="Start training").wait_for()
    assert page.get_by_role("button", name="Start training").is_disabled()
    page.get_by_text("Upload a new dataset").click()
    assert page.get_by_role("button", name="Upload", exact=True).is_disabled()

    page.goto("/try?model=try-fraud")
    page.locator("#no-predict").wait_for()
    assert page.get_by_role("button", name="Score").is_disabled()

    # the API refuses what the buttons would do
    r = page.request.put("/v1/models/try-fraud/aliases/production", data={"version": 1})
    assert r.status == 403

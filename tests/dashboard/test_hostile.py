"""Markup planted in everything a user controls that can hold it (a dataset name, a run's note, a key's
name, a model's labels, an error quoting its input; tags and model names refuse it) stays text on every page
that shows it: nothing runs, no element is made from it, and the text reads as it was written."""

import json

import pytest

from app import examples
from tests.dashboard.families import IMG, SCRIPT

pytestmark = pytest.mark.slow


def assert_inert(page, *texts: str) -> None:
    assert page.evaluate("() => window.__pwned") is None
    assert page.evaluate("() => document.querySelectorAll('img[src=\"x\"], script:not([src])').length") == 0
    body = page.locator("body").inner_text()
    for text in texts:
        assert text in body, f"{text!r} is not shown as text on {page.url}"


def test_hostile_names_tags_notes_labels_and_errors_stay_text(pages, stack, tmp_path):
    pages.allow("status of 422")  # the refused submit that quotes its input
    api = stack.api
    ds = api.dataset(examples.transactions_csv(n=200, seed=21), "hostile.csv", "fraud", name=f"data {IMG}")
    job = api.job("fraud", ds["id"], {"epochs": 1}, register_as="hostile-fraud")
    api.call("POST", f"/v1/jobs/{job['id']}/cancel")
    for tag in (SCRIPT, IMG):  # tags are refused markup by the API; the note takes any text
        api.call("PATCH", f"/v1/jobs/{job['id']}", json={"tags": [tag]}, expect=(422,))
    api.call("PATCH", f"/v1/jobs/{job['id']}", json={"tags": ["x:script+img"], "note": f"note {SCRIPT} {IMG}"})
    api.model_version("hostile", examples.tiny_classifier(classes=2).SerializeToString(), "classification",
                      json.dumps({"labels": [SCRIPT, IMG]}))
    api.call("PUT", "/v1/models/hostile/aliases/production", json={"version": 1})
    key = api.key(["admin"], f"key {IMG}")

    page = pages.open(f"/?dataset_id={ds['id']}", key=key)
    page.locator("table[aria-label=Runs] tbody tr td a").first.wait_for()
    assert_inert(page, f"key {IMG}", f"data {IMG}", "x:script+img")

    page.goto(f"/runs/{job['id']}")
    page.get_by_role("heading", name="Tags and note").wait_for()
    assert page.get_by_role("textbox", name="Note").input_value() == f"note {SCRIPT} {IMG}"
    assert_inert(page, f"data {IMG}")
    pages.shot(page, "-run")

    page.goto(f"/compare?ids={job['id']},{stack.training['fraud']}")
    page.locator("#config-diff").wait_for()
    assert_inert(page, f"data {IMG}")

    page.goto("/datasets?task=fraud")
    page.get_by_role("table", name="Datasets").get_by_text(f"data {IMG}").wait_for()
    assert_inert(page, f"data {IMG}")

    page.goto("/models/hostile")
    page.get_by_text("Metadata").click()
    assert_inert(page, SCRIPT.replace('"', '\\"'), IMG.replace('"', '\\"'))

    image = tmp_path / "corner.png"
    image.write_bytes(examples.png(examples.corner_images(1)[0][0]))
    page.goto("/try?model=hostile")
    page.locator("#image-file").set_input_files(str(image))
    page.locator("#labels .hbar").nth(1).wait_for()
    assert_inert(page, SCRIPT, IMG)
    pages.shot(page, "-labels")

    page.goto("/new?task=fraud")
    page.get_by_text("More settings").click()
    page.get_by_label("label_column", exact=True).fill(IMG)
    page.get_by_label("Dataset", exact=True).select_option(ds["id"])
    page.get_by_role("button", name="Start training").click()
    page.locator(".field .error").filter(has_text="no column").wait_for()
    assert_inert(page, IMG)

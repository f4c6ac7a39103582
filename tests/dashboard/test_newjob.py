"""A training job from the browser: a dataset uploaded with a progress bar, the config form generated from
the family's config class (defaults and help), errors shown next to the field they name, then the run's
page, where the run can be cancelled."""

import re

import pytest

from app import examples

pytestmark = pytest.mark.slow


def test_a_job_is_submitted_from_a_generated_form(pages, stack, tmp_path):
    pages.allow("status of 422")  # the refused submit below
    data = tmp_path / "browser.csv"
    data.write_bytes(examples.transactions_csv(n=300, seed=9))
    page = pages.open("/new?task=fraud")
    page.get_by_text("Upload a new dataset").click()
    page.get_by_label("Dataset file").set_input_files(str(data))
    page.get_by_label("Name", exact=True).fill("uploaded from the browser")
    page.get_by_role("button", name="Upload", exact=True).click()
    page.get_by_text("Uploaded “uploaded from the browser”.").wait_for()
    assert page.get_by_label("upload progress").get_attribute("value") == "100"
    chosen = page.get_by_label("Dataset", exact=True).locator("option:checked").text_content()
    assert "uploaded from the browser" in chosen
    assert re.search(r"dataset=[0-9a-f]{32}", page.url)

    epochs = page.get_by_label("epochs", exact=True)
    assert epochs.input_value() == "40"  # the family's default, from GET /v1/families
    assert "Passes over the training rows" in page.locator(".field", has=epochs).text_content()
    epochs.fill("1.5")
    page.get_by_role("button", name="Start training").click()
    page.locator(".field", has=epochs).get_by_text("must be a whole number").wait_for()

    assert page.get_by_label("devices", exact=True).count() == 0  # fraud trains in one process only
    epochs.fill("1")
    page.get_by_text("More settings").click()
    page.get_by_label("label_column", exact=True).fill("IsFraud")
    page.get_by_label("Register as (model name)").fill("browser-fraud")
    page.get_by_role("button", name="Start training").click()
    label_field = page.locator(".field", has=page.get_by_label("label_column", exact=True))
    label_field.locator(".error").filter(has_text="IsFraud").wait_for()
    pages.shot(page, "-field-error")

    page.get_by_label("label_column", exact=True).fill("")
    page.get_by_role("button", name="Start training").click()
    page.wait_for_url(re.compile(r"/runs/[0-9a-f]{32}$"))
    job_id = page.url.rsplit("/", 1)[1]
    job = stack.api.call("GET", f"/v1/jobs/{job_id}").json()
    assert job["config"]["epochs"] == 1 and job["register_as"] == "browser-fraud"

    page.get_by_role("button", name="Cancel run").click()
    page.get_by_role("dialog").get_by_role("button", name="Cancel run").click()
    page.locator("h1 .badge").filter(has_text=re.compile("cancelled|succeeded")).wait_for(timeout=60_000)

    page.goto("/datasets?task=fraud")  # the upload is listed with its runs and a way to train on it again
    row = page.get_by_role("table", name="Datasets").locator("tr", has_text="uploaded from the browser")
    row.get_by_role("link", name="Train").wait_for()
    pages.shot(page, "-datasets")
    row.get_by_role("link", name="Runs").click()
    page.wait_for_url(re.compile(r"/\?dataset_id=[0-9a-f]{32}"))
    page.locator("table[aria-label=Runs] tbody tr", has_text=job_id[:8]).wait_for()


def test_a_distributed_familys_form_offers_devices(pages):
    page = pages.open("/new?task=classification")
    devices = page.get_by_label("devices", exact=True)
    assert devices.input_value() == "1"  # the platform's key, from GET /v1/families' platform_keys
    assert "torchrun" in page.locator(".field", has=devices).text_content()

"""The registry: versions with their lineage, an alias moved with a click and a confirmation, its history,
and the one-click rollback."""

import json
import re

import pytest

from app import examples

pytestmark = pytest.mark.slow


def _versions(api, name: str, n: int) -> None:
    for seed in range(n):
        api.model_version(name, examples.tiny_classifier(classes=2, seed=seed).SerializeToString(), "classification",
                          json.dumps({"labels": ["cat", "dog"]}))


def test_an_alias_moves_with_a_confirmation_and_rolls_back(pages, stack):
    _versions(stack.api, "pets", 3)
    stack.api.call("PUT", "/v1/models/pets/aliases/production", json={"version": 1})
    page = pages.open("/models")
    page.get_by_role("link", name="pets").click()
    page.wait_for_url("**/models/pets")
    row = page.locator('#aliases tr[data-alias="production"]')
    assert row.locator("td").nth(1).text_content() == "v1"

    row.get_by_label("version for production").select_option("3")
    row.get_by_role("button", name="Move").click()
    dialog = page.get_by_role("dialog")
    assert "moves from v1 to v3" in dialog.text_content()
    pages.shot(page, "-confirm")
    dialog.get_by_role("button", name="Cancel").click()
    assert stack.api.call("GET", "/v1/models/pets").json()["aliases"]["production"] == 1

    row.get_by_role("button", name="Move").click()
    page.get_by_role("dialog").get_by_role("button", name="Move to v3").click()
    page.locator('#aliases tr[data-alias="production"] td').nth(1).filter(has_text="v3").wait_for()
    assert stack.api.call("GET", "/v1/models/pets").json()["aliases"]["production"] == 3

    row = page.locator('#aliases tr[data-alias="production"]')
    row.get_by_role("button", name="History").click()
    history = page.get_by_label("history of production")
    history.wait_for()
    assert re.search(r"v1 → v3", history.text_content())

    row.get_by_role("button", name="Roll back").click()
    page.get_by_role("dialog").get_by_role("button", name="Roll back").click()
    page.locator('#aliases tr[data-alias="production"] td').nth(1).filter(has_text="v1").wait_for()
    assert stack.api.call("GET", "/v1/models/pets").json()["aliases"]["production"] == 1
    page.locator('#aliases tr[data-alias="production"]').get_by_role("button", name="History").click()
    page.get_by_label("history of production").wait_for()
    pages.shot(page, "-history")


def test_versions_show_their_lineage_from_dataset_to_run(pages, trained):
    page = pages.open("/models/try-fraud")
    row = page.locator('#versions tr[data-version="1"]')
    lineage = row.locator("td").nth(4)
    assert "tiny fraud" in lineage.text_content()
    run_link = lineage.get_by_role("link").nth(1)
    assert run_link.get_attribute("href") == f"/runs/{trained['fraud']['id']}"
    assert "val_pr_auc" in row.locator("td").nth(2).text_content()
    detail = page.get_by_label("Version 1")
    assert "features" in detail.text_content() or detail.locator("details").count() == 1

"""Comparing runs: curves overlaid on shared axes, config differences highlighted, final metrics side by
side, and the link that reopens the same comparison."""

import re

import pytest

from tests.dashboard.seed import seed_runs

pytestmark = pytest.mark.slow


def test_compare_overlays_curves_and_highlights_config_differences(pages, stack):
    ids, _ = seed_runs(stack.db_url, [
        {"task": "classification", "steps": 300, "epochs": 3, "keys": ["val_accuracy"], "seed": i,
         "config": {"epochs": 3, "lr": lr, "batch_size": 8}, "metrics": {"val_accuracy": acc, "loss": 0.1 + i}}
        for i, (lr, acc) in enumerate([(0.01, 0.81), (0.001, 0.93), (0.01, 0.77)])], dataset_name="compared")
    page = pages.open(f"/runs/{ids[0]}")  # a run page offers the comparison
    page.get_by_role("link", name="Compare with…").click()
    page.wait_for_url(re.compile(r"/compare\?ids="))
    for rid in ids[1:]:
        page.get_by_label("Add a run").fill(rid)
        page.get_by_role("button", name="Add run").click()
        page.wait_for_url(re.compile(rid))
    assert page.url.endswith("/compare?ids=" + "%2C".join(ids)) or page.url.endswith("/compare?ids=" + ",".join(ids))

    loss = page.locator('figure[data-key="loss"]')
    loss.wait_for()
    assert loss.locator(".plot").get_attribute("data-points") == str(3 * 300)
    assert page.locator('figure[data-key="val_accuracy"]').count() == 1
    diff = page.locator("#config-diff tbody tr")
    assert diff.count() == 1 and diff.first.locator("td").first.text_content().startswith("lr")
    assert "diff" in diff.first.get_attribute("class")
    page.get_by_label("only differences").uncheck()
    assert page.locator("#config-diff tbody tr").count() == 3
    best = page.locator("#final-metrics tr", has_text="val_accuracy").locator("strong")
    assert best.text_content() == "0.93"

    page.get_by_label("x axis").select_option("epoch")
    shared = page.url
    assert "x=epoch" in shared and "all=1" in shared
    other = pages.open(shared, color_scheme="dark")  # the link, in another browser session (and dark mode)
    other.locator('figure[data-key="loss"] canvas').first.wait_for()
    assert other.get_by_label("x axis").input_value() == "epoch"
    assert other.locator("#config-diff tbody tr").count() == 3

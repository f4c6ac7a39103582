"""The runs table (server-side sort, filters and paging, all in the URL) and a run's page, whose curves grow
from the job's event stream while it trains."""

import re

import pytest

from app import examples
from tests.dashboard.seed import seed_runs

pytestmark = pytest.mark.slow


def test_the_runs_table_filters_and_pages_with_its_state_in_the_url(pages, stack):
    specs = [{"task": "recommendation", "steps": 20, "metrics": {"val_rmse": 1.5 + i / 100}} for i in range(30)]
    _, datasets = seed_runs(stack.db_url, specs, dataset_name="paged ratings")
    page = pages.open(f"/?task=recommendation&dataset_id={datasets['recommendation']}&limit=25")
    rows = page.locator("table[aria-label=Runs] tbody tr")
    rows.first.wait_for()
    assert rows.count() == 25
    assert page.get_by_label("Family").input_value() == "recommendation"
    page.get_by_role("button", name="Next →").click()
    page.wait_for_url(re.compile(r"offset=25"))
    page.get_by_text("26–30 of 30 runs").wait_for()
    assert rows.count() == 5

    page.goto(page.url)  # the link reopens the same view
    page.get_by_text("26–30 of 30 runs").wait_for()
    page.get_by_label("Family").select_option("fraud")
    page.wait_for_url(re.compile(r"task=fraud"))
    assert "offset" not in page.url
    page.get_by_text("No runs match").wait_for()
    page.get_by_label("Family").select_option("recommendation")
    page.get_by_role("button", name="Best metric").click()
    page.wait_for_url(re.compile(r"sort=best_metric"))
    page.get_by_text("1–25 of 30 runs").wait_for()
    best = page.locator("table[aria-label=Runs] tbody tr td.num").first.text_content()
    assert best == "1.5val_rmse"  # best first: the lowest error (recommendation's val_rmse)
    page.get_by_role("button", name="Duration").focus()  # the headers are buttons: the keyboard sorts too
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"sort=duration_s"))
    pages.shot(page, "-sorted")


def test_a_curve_gains_points_while_the_job_trains(pages, stack, trained):
    ds = stack.api.dataset(examples.transactions_csv(n=400, seed=3), "live.csv", "fraud", name="live fraud")
    # long enough (2,000 steps, ~10-15 s) that the page is open for several of the stream's pushes: at 600 steps
    # an idle machine finished the run while the page loaded, and the curve was seen only twice
    job = stack.api.job("fraud", ds["id"], {"epochs": 100, "batch_size": 16, "hidden": 8}, register_as="live-fraud")
    page = pages.open(None)
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(f"/runs/{job['id']}")
    loss = page.locator('figure[data-key="loss"] .plot')
    loss.wait_for()
    seen = []
    for _ in range(1200):
        points = int(loss.get_attribute("data-points") or 0)
        if not seen or points != seen[-1]:
            seen.append(points)
        if page.locator("h1 .badge").text_content() in ("succeeded", "failed"):
            break
        page.wait_for_timeout(50)
    page.get_by_text("The run succeeded.").wait_for(timeout=120_000)
    assert len([n for n in seen if n > 0]) >= 3, f"the loss curve did not grow step by step: {seen}"
    assert seen == sorted(seen)
    # pushed: one event stream and one history read, no polling of the job or its metrics
    metric_reads = [u for u in requests if f"/v1/jobs/{job['id']}/metrics" in u]
    job_reads = [u for u in requests if u.endswith(f"/v1/jobs/{job['id']}")]
    assert len(metric_reads) == 1 and len(job_reads) == 1, requests
    assert page.locator("#progress-pct").text_content() == "100%"
    page.locator("pre.log", has_text="registering live-fraud version 1").wait_for()  # the log, followed live

    # its files: the ONNX model and the checkpoint, downloaded through the session
    for name in ("model.onnx", "last.pt"):
        with page.expect_download() as download:
            page.locator("#artifacts-list").get_by_role("link", name=name).click()
        data = open(download.value.path(), "rb").read()
        listed = stack.api.call("GET", f"/v1/jobs/{job['id']}/artifacts").json()["items"]
        assert len(data) == next(a["size_bytes"] for a in listed if a["name"] == name) > 0

    page.get_by_label("log scale").check()
    page.get_by_label("x axis").select_option("time")
    page.wait_for_url(re.compile(r"x=time&log=1"))
    page.reload()
    assert page.get_by_label("log scale").is_checked() and page.get_by_label("x axis").input_value() == "time"
    page.locator('figure[data-key="loss"] canvas').first.wait_for()

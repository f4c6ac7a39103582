"""The dashboard with a big history (issue 19's target: the runs page's first paint under 300 ms with 10,000
runs; a compare of ten runs of 10,000 steps each stays responsive).

Seeds a fresh `dlserve serve` database directly (tests/dashboard/seed.py): 10,000 finished runs across the
six families, and ten runs of 10,000 steps with two curves each. Then, in chromium (Playwright), measures
each page --repeat times in a fresh browser context and reports the medians:

- runs page: first paint and first contentful paint (the browser's paint timing), and the time until the
  table's rows are on screen (a performance mark the page sets); also sorted by the best metric;
- compare page, ten 10,000-step runs: first contentful paint, the time until every chart is drawn, and
  the time to redraw them all when the log scale is switched on and the x axis changes.

    python benchmarks/dashboard.py [--runs 10000] [--long-runs 10] [--steps 10000] [--repeat 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.dashboard.conftest import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from tests.dashboard.seed import TASKS, seed_runs  # noqa: E402
from tests.dashboard.stack import Api, serve  # noqa: E402

PAINT = """() => Object.fromEntries(performance.getEntriesByType('paint').map(e => [e.name, e.startTime]))"""
MARK = """(name) => {
  const m = performance.getEntriesByName(name); return m.length ? m[m.length - 1].startTime : null; }"""
# switches the control, then waits two animation frames: the charts are redrawn by then
REDRAW = """async (selector) => {
  const el = document.querySelector(selector), t0 = performance.now();
  if (el.type === 'checkbox') el.checked = !el.checked; else el.value = el.value === 'step' ? 'epoch' : 'step';
  el.dispatchEvent(new Event('change', { bubbles: true }));
  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  return performance.now() - t0;
}"""


def seed(url: str, runs: int, long_runs: int, steps: int) -> list[str]:
    t0 = time.perf_counter()
    specs = [{"task": TASKS[i % len(TASKS)], "steps": 0, "status": "succeeded" if i % 7 else "failed",
              "config": {"epochs": 1 + i % 9, "lr": 10 ** -(1 + i % 4)}, "metrics": {"val_accuracy": (i % 100) / 100,
              "val_map": (i % 50) / 50, "val_rmse": 1 + (i % 30) / 30, "val_pr_auc": (i % 20) / 20}}
             for i in range(runs)]
    seed_runs(url, specs, dataset_name="bench")
    long = [{"task": "classification", "steps": steps, "epochs": 10, "seed": i, "keys": ["val_accuracy"],
             "config": {"epochs": 10, "lr": 0.001 * (i + 1), "batch_size": 64},
             "metrics": {"val_accuracy": 0.9 + i / 100}}
            for i in range(long_runs)]
    ids, _ = seed_runs(url, long, dataset_name="bench long")
    print(f"seeded {runs:,} runs and {long_runs} runs of {steps:,} steps in {time.perf_counter() - t0:.1f} s",
          flush=True)
    return ids


def measure(browser, base: str, key: str, path: str, mark: str, redraws: tuple[str, ...] = ()) -> dict[str, float]:
    ctx = browser.new_context(base_url=base, viewport={"width": 1280, "height": 900})
    try:
        assert ctx.request.post("/v1/session", data={"key": key}).status == 201
        page = ctx.new_page()
        page.goto(path)
        page.wait_for_function(f"() => performance.getEntriesByName('{mark}').length > 0", timeout=120_000)
        paint = page.evaluate(PAINT)
        out = {"first_paint_ms": paint.get("first-paint"),
               "first_contentful_paint_ms": paint.get("first-contentful-paint"),
               "rendered_ms": page.evaluate(MARK, mark)}
        for selector in redraws:
            out[f"redraw {selector}_ms"] = page.evaluate(REDRAW, selector)
        return out
    finally:
        ctx.close()


def medians(samples: list[dict[str, float]]) -> dict[str, float]:
    return {k: round(statistics.median(s[k] for s in samples), 1) for k in samples[0] if samples[0][k] is not None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--long-runs", type=int, default=10)
    ap.add_argument("--steps", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as home, serve(Path(home), worker=False) as url, sync_playwright() as p:
        api = Api(url)
        key = api.key(["admin"], "bench")
        ids = seed(f"sqlite:///{Path(home) / 'dlserve.db'}", args.runs, args.long_runs, args.steps)
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        compare = "/compare?ids=" + ",".join(ids)
        redraws = ("input[type=checkbox]", "select[aria-label='x axis']")
        pages = {"runs page": ("/", "dlserve:runs-rendered", ()),
                 "runs page, sorted by best metric": ("/?sort=best_metric", "dlserve:runs-rendered", ()),
                 f"compare {len(ids)} runs x {args.steps:,} steps": (compare, "dlserve:compare-rendered", redraws)}
        results = {}
        for name, (path, mark, redraws) in pages.items():
            measure(browser, url, key, path, mark)  # warm: the server's caches, the browser's module cache
            results[name] = medians([measure(browser, url, key, path, mark, redraws) for _ in range(args.repeat)])
            print(f"{name}: {results[name]}", flush=True)
        browser.close()
    report = {"runs": args.runs, "long_runs": args.long_runs, "steps": args.steps, "repeat": args.repeat,
              "results": results}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

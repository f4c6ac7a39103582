"""What the training loop (models/common/loop.py) does that seeded golden runs cannot show: a time budget
ends a run early and a resumed run knows it ended; a checkpoint written before the loop still resumes."""

from __future__ import annotations

import dataclasses

from tests.models import training_runs as R
from tests.models.test_training_golden import reference


def test_max_minutes_ends_the_run_inside_its_first_epoch_and_a_resumed_run_stays_ended(tmp_path):
    case = dataclasses.replace(R.BY_NAME["translation-transformer"],
                               config={**R.BY_NAME["translation-transformer"].config, "max_minutes": 1e-6})
    record, saved = R.run(case, tmp_path / "first")
    steps = [r for r in record["reports"] if dict(r[1]).keys() >= {"loss"}]
    assert len(steps) == 1 and record["reports"][-1][1][0] == ["epoch", 1.0]  # one step, then validation
    assert record["train_metrics"]["epochs_run"] == 1.0 and "stopped_at_minutes" in record["train_metrics"]
    assert [(s["epoch"], s["stopped"]) for s in saved] == [(1, True)]

    # as the loop's predecessor wrote it: "stopped" alone says the budget ran out
    old = {k: v for k, v in saved[0].items() if k not in ("loop", "stopped_by")}
    again, more = R.run(case, tmp_path / "again", resume=old)
    assert again["reports"] == [] and more == []
    assert again["train_metrics"].keys() == record["train_metrics"].keys()
    assert again["weights"] == record["weights"]


def test_a_checkpoint_written_before_the_loop_resumes_exactly(tmp_path):
    case = R.BY_NAME["classification-lenet-patience"]
    want = reference(case, tmp_path)
    _, saved = R.run(case, tmp_path / "first", interrupt_after=0)
    state = saved[0]
    best = state["best"]
    # the former layout: the best epoch's accuracy under "accuracy" (-1 before any), no loop fields
    old = {**{k: v for k, v in state.items() if k not in ("loop", "stopped_by", "elapsed")},
           "best": {"accuracy": best["value"], "epoch": best["epoch"], "metrics": best["metrics"],
                    "state": best["state"]}}
    resumed, _ = R.run(case, tmp_path / "again", resume=old)
    assert R.canonical(resumed["reports"]) == R.canonical([r for r in want["reports"] if r[0] > state["step"]])
    assert R.canonical(resumed["train_metrics"]) == R.canonical(want["train_metrics"])
    assert resumed["weights"] == want["weights"]

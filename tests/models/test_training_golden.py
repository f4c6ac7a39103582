"""Every family's training, kept bit for bit (issue 18): a seeded tiny run reports the same values at the
same steps, checkpoints at the same epochs and ends with the same metrics and weights as the record
made before the training code was refactored (tests/models/golden/); and a run whose worker dies
right after a checkpoint, resumed from that checkpoint, goes on exactly as the uninterrupted run did.

Bit-for-bit equality holds for one torch build on one instruction set and one CPU vendor (MKL picks its
kernels by vendor), one thread here. The records of golden/ were made on an AVX2 machine before the refactor
(they carry no vendor and compare on every AVX2 machine); golden/<cpu>-<vendor>/ holds records made later on
other machines (AVX-512 on an AMD EPYC 2026-12-04, on an Intel Xeon 2026-12-05, from the code the AVX2 records
had held to), so that a change on those kinds of machine is caught too. On a machine matching none, the golden
comparison is skipped, saying why, and the resume test compares against an uninterrupted run made there
instead."""

from __future__ import annotations

from typing import Any

import pytest

from tests.models import training_runs as R

RESUMES = [(c, k) for c in R.CASES for k in (*c.interrupt_after, "last")]


def _differences(got: dict[str, Any], want: dict[str, Any]) -> list[str]:
    """Where two records differ, as lines a person can read (the first differing report, not all of them)."""
    out = []
    g_reports, w_reports = got["reports"], want["reports"]
    for i, (g, w) in enumerate(zip(g_reports, w_reports, strict=False)):
        if R.canonical(g) != R.canonical(w):
            out.append(f"report {i}: got {g}, recorded {w}")
            break
    if len(g_reports) != len(w_reports):
        out.append(f"{len(g_reports)} reports, recorded {len(w_reports)}")
    for key in sorted(set(got) | set(want)):
        if key != "reports" and R.canonical(got.get(key)) != R.canonical(want.get(key)):
            out.append(f"{key}: got {got.get(key)}, recorded {want.get(key)}")
    return out


_uninterrupted: dict[str, dict[str, Any]] = {}


def reference(case: R.Case, tmp_path) -> dict[str, Any]:
    """The golden record where this machine is the one it was made on, else an uninterrupted run here."""
    recorded = R.golden(case)
    if R.matches(recorded["environment"], R.environment()):
        return recorded["record"]
    if case.name not in _uninterrupted:
        _uninterrupted[case.name] = R.run(case, tmp_path / "whole")[0]
    return _uninterrupted[case.name]


@pytest.mark.parametrize("case", R.CASES, ids=lambda c: c.name)
def test_a_seeded_run_matches_its_golden_record(case, tmp_path):
    recorded = R.golden(case)
    if not R.matches(recorded["environment"], R.environment()):
        pytest.skip(f"recorded on {recorded['environment']}, this is {R.environment()}: bits may differ")
    record, _ = R.run(case, tmp_path)
    assert not (diff := _differences(record, recorded["record"])), "\n".join(diff)


@pytest.mark.parametrize("case, after", RESUMES, ids=lambda v: v.name if isinstance(v, R.Case) else f"after-{v}")
def test_a_run_resumed_after_a_crash_ends_where_the_uninterrupted_one_does(case, after, tmp_path):
    want = reference(case, tmp_path)
    k = len(want["checkpoints"]) - 1 if after == "last" else after
    partial, saved = R.run(case, tmp_path / "first", interrupt_after=k)
    assert len(saved) == k + 1, "the run ended before the checkpoint it was to be stopped after"
    assert R.canonical(partial["reports"]) == R.canonical(want["reports"][:len(partial["reports"])])
    at = saved[k]["step"]
    resumed, _ = R.run(case, tmp_path / "again", resume=saved[k])  # the dataset loaded again, as a worker does
    expected = {**want, "reports": [r for r in want["reports"] if r[0] > at],
                "checkpoints": want["checkpoints"][k + 1:]}
    assert not (diff := _differences(resumed, expected)), "\n".join(diff)

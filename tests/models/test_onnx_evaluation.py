"""Every family's int8 gate (models.contract.Family.quantisation, issue 20) measures a version with ONNX
Runtime (evaluation.evaluate_onnx) on the validation split: the figures are the run's own, as
training.evaluate measures them with PyTorch, for the same tiny model exported to its version folder."""

from __future__ import annotations

import dataclasses
import math

import pytest

from models import FAMILIES, family
from tests.models import training_runs as R

QUANTISED = sorted(t for t in FAMILIES if family(t).quantisation is not None)
# keys both measure (the losses and baselines stay PyTorch's: the gate needs none of them), and how
# closely: float32 graphs against float32 PyTorch, with the same search and post-processing after them
AGREE = {
    "classification": {"val_accuracy": 1e-9, "val_loss": 1e-4},
    "detection": {"val_map": 1e-3, "val_map_50": 1e-3, "val_map_75": 1e-3},
    "captioning": {"val_bleu_1": 1e-6, "val_bleu_4": 1e-6, "val_cider": 1e-6},
    "translation": {"val_bleu": 1e-6},
    "recommendation": {"val_rmse": 1e-5, "val_mae": 1e-5, "val_hr_at_10": 1e-9, "val_ndcg_at_10": 1e-9},
    "fraud": {"val_roc_auc": 1e-9, "val_pr_auc": 1e-6},
}


def test_every_built_in_family_has_an_int8_gate():  # what a gate holds: test_family_contract.py
    assert QUANTISED == sorted(FAMILIES)
    assert all(family(t).quantisation.metric in AGREE[t] for t in QUANTISED)


def _answers_as_references(task: str, data, model):
    """A copy of `data` whose validation references are what the PyTorch model answers (its translations,
    captions, its three best boxes per image): a tiny model trained for a second scores 0 BLEU and 0 mAP
    against the real references, and 0 == 0 would prove little."""
    training = family(task).training
    if task == "translation":  # 8 sentences: this model writes until max_length, a beam search each
        cfg, data = data.info["config"], dataclasses.replace(data, val_src=data.val_src[:8], val_tgt=data.val_tgt[:8],
                                                             val_src_text=data.val_src_text[:8], info=dict(data.info))
        hyps = training.translate(model, data, data.val_src, "cpu", cfg["eval_beam_size"], cfg["length_penalty"])
        return dataclasses.replace(data, val_ref_text=hyps)
    if task == "captioning":  # greedy: by beam search, this model's best caption is the empty one
        from models.common import text

        data = dataclasses.replace(data, eval_beam_size=1)
        hyps = training.generate(model, data, data.val.images, "cpu", beam_size=1, length_penalty=data.length_penalty)
        refs = [[text.decode(data.tokenizer, h[0][0]) if h else ""] for h in hyps]
        return dataclasses.replace(data, val=dataclasses.replace(data.val, references=refs))
    if task == "detection":
        from models.detection.boxes import select

        best = [select(row[:, :4], row[:, 4:], 0.0, 0.5, 3) for row in training.predict(model, data.val.x, "cpu")]
        return dataclasses.replace(data, val=dataclasses.replace(
            data.val, boxes=[b.astype("float32") for b, _, _ in best], classes=[c for _, _, c in best]))
    return data


@pytest.mark.parametrize("task", QUANTISED)
def test_onnx_runtime_measures_a_version_as_pytorch_measured_its_run(task):
    contract = family(task)
    _, data, model, folder = R.tiny_version(task)
    data = _answers_as_references(task, data, model)
    want = {f"val_{k}": v for k, v in contract.training.evaluate(model, data, "cpu").items()}
    got = contract.evaluation.evaluate_onnx(data, folder)
    assert contract.quantisation.metric in got
    assert set(got) <= set(contract.metrics), sorted(set(got) - set(contract.metrics))
    assert want[contract.quantisation.metric] > 0, want
    for key, tol in AGREE[task].items():
        assert math.isfinite(got[key]) and got[key] == pytest.approx(want[key], abs=tol), (key, got[key], want[key])

    few = contract.evaluation.evaluate_onnx(data, folder, limit=2)  # what `limit` caps: the rows scored
    assert set(few) == set(got) and math.isfinite(few[contract.quantisation.metric]) or task == "fraud"

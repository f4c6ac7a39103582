"""Every family's calibration batches (models.contract.Family.calibration, for int8 quantisation) come
from its training split the same way every time and run through its exported graphs in ONNX Runtime:
a one-graph family's feed the model, an encoder-decoder's feed the encoder and step the decoder."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from models import FAMILIES, family
from models.common import calibration
from tests.models import training_runs as R

CASES = [next(c for c in R.CASES if c.task == task) for task in FAMILIES if family(task).calibration]


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _rows(batch: dict) -> set[int]:
    return {a.shape[0] for feeds in batch.values() for a in (feeds.values() if isinstance(feeds, dict) else [feeds])}


def test_every_built_in_family_provides_calibration_batches():
    assert sorted(c.task for c in CASES) == sorted(FAMILIES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.task)
def test_calibration_batches_are_training_rows_that_run_through_the_exported_graphs(case):
    contract = family(case.task)
    training = contract.training
    _, data, _, folder = R.tiny_version(case.task)

    batches = list(training.calibration_batches(data, 3, 4))
    again = list(training.calibration_batches(data, 3, 4))
    assert 1 <= len(batches) <= 3 and all(_rows(b) <= {1, 2, 3, 4} and len(_rows(b)) == 1 for b in batches)
    for b, a in zip(batches, again, strict=True):
        for key, feeds in b.items():
            for name, value in (feeds.items() if isinstance(feeds, dict) else [(key, feeds)]):
                assert np.array_equal(value, (a[key][name] if isinstance(feeds, dict) else a[key]))

    if not contract.multi_file:
        session = _session(folder / "model.onnx")
        for batch in batches:
            assert set(batch) == {i.name for i in session.get_inputs()}
            outputs = session.run(None, batch)
            assert all(o.shape[0] == next(iter(_rows(batch))) for o in outputs)
        return
    encoder, decoder = _session(folder / calibration.ENCODER), _session(folder / calibration.DECODER)
    for batch in batches:
        assert set(batch) == {calibration.ENCODER, calibration.DECODER}
        tokens = batch[calibration.DECODER]["token"]
        steps = list(calibration.decoder_steps(encoder, decoder, batch))
        assert len(steps) == tokens.shape[1] >= 2
        for feeds in steps:
            assert set(feeds) == {i.name for i in decoder.get_inputs()}
            log_probs = decoder.run(["log_probs"], feeds)[0]
            assert log_probs.shape[0] == tokens.shape[0] and np.isfinite(log_probs).all()

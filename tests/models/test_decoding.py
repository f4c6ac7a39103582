"""The shared decoding module: beam search against exhaustive search, greedy against argmax, and the
ONNX step runner (caches, their batch axis, reordering, option groups) against a numpy reference."""

from __future__ import annotations

import itertools

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from models.common import decoding
from models.common.text import BOS, EOS

V = 6


def markov(seed: int = 0) -> np.ndarray:
    t = np.random.default_rng(seed).normal(size=(V, V)) * 2
    return (t - np.log(np.exp(t).sum(1, keepdims=True))).astype(np.float32)


def exhaustive(table: np.ndarray, max_len: int, alpha: float) -> list[tuple[list[int], float]]:
    """Every hypothesis the search may produce, scored its way, best first."""
    found = []
    for n in range(1, max_len + 1):
        for seq in itertools.product(range(V), repeat=n):
            if EOS in seq[:-1] or (seq[-1] != EOS and n < max_len):
                continue
            toks = (BOS,) + seq
            raw = sum(float(table[toks[i], toks[i + 1]]) for i in range(n))
            found.append((list(seq[:-1]) if seq[-1] == EOS else list(seq), raw / decoding.length_norm(n, alpha)))
    return sorted(found, key=lambda h: -h[1])


@pytest.mark.parametrize("alpha", [0.0, 0.6, 1.0])
def test_a_wide_beam_finds_the_best_hypotheses(alpha):
    table = markov(1)

    def step(prefix, static, cache):
        return table[prefix[:, -1]], cache

    got = decoding.search(step, {"x": np.zeros((2, 1))}, {}, max_length=[4, 4], beam_size=V ** 2, n_best=3,
                          length_penalty=alpha)
    want = exhaustive(table, 4, alpha)[:3]
    for row in got:
        assert [h[0] for h in row] == [h[0] for h in want]
        assert np.allclose([h[1] for h in row], [h[1] for h in want])


def test_greedy_follows_the_argmax_and_stops_at_max_length():
    table = markov(2)
    table[:, EOS] = -50.0  # never ends by itself

    def step(prefix, static, cache):
        return table[prefix[:, -1]], cache

    [[(tokens, score)]] = decoding.search(step, {"x": np.zeros((1, 1))}, {}, max_length=[5], beam_size=1)
    want, prev = [], BOS
    for _ in range(5):
        prev = int(np.argmax(table[prev]))
        want.append(prev)
    assert tokens == want
    raw = sum(float(table[a, b]) for a, b in zip([BOS] + want, want, strict=False))
    assert score == pytest.approx(raw / decoding.length_norm(5, 1.0), rel=1e-6)


def test_rows_keep_their_own_max_length_and_static_inputs():
    table = markov(3)
    table[:, EOS] = -50.0

    def step(prefix, static, cache):
        assert static["row"].shape[0] == prefix.shape[0]
        return table[prefix[:, -1]] + static["row"][:, None] * 0, cache

    out = decoding.search(step, {"row": np.arange(3.0)}, {}, max_length=[1, 3, 2], beam_size=2, n_best=2)
    assert [len(row[0][0]) for row in out] == [1, 3, 2]
    assert all(len(row) == 2 for row in out)


def test_pack_and_unpack_round_trip():
    rows = [[([4, 5], -0.5), ([4], -1.0)], [([5, 5, 5], -0.2)]]
    packed = decoding.pack(rows, 2)
    assert packed["tokens"].shape == (2, 2, 3) and packed["scores"].dtype == np.float32
    assert [decoding.unpack({k: v[i] for k, v in packed.items()}) for i in range(2)] == \
        [[([4, 5], -0.5), ([4], -1.0)], [([5, 5, 5], pytest.approx(-0.2))]]


# -- the ONNX runner -----------------------------------------------------------------------------------
# A decoder whose next-token distribution depends on the token, on a static per-row bias from the encoder
# and on the sum of the tokens before it, which it keeps in an empty-at-first cache laid out
# [1, batch, past_len] (batch not first): a cache reordered wrongly, or a static input misaligned, changes
# the answer.
def _graphs(tmp_path, table: np.ndarray, vec: np.ndarray):
    f = TensorProto.FLOAT
    enc = helper.make_graph(
        [helper.make_node("Cast", ["src"], ["srcf"], to=f),
         helper.make_node("ReduceSum", ["srcf", "ax1"], ["bias"], keepdims=0)],
        "encoder", [helper.make_tensor_value_info("src", TensorProto.INT64, ["batch", "src_len"])],
        [helper.make_tensor_value_info("bias", f, ["batch"])],
        [helper.make_tensor("ax1", TensorProto.INT64, [1], [1])])
    dec = helper.make_graph(
        [helper.make_node("Gather", ["table", "token"], ["rows"], axis=0),
         helper.make_node("ReduceSum", ["past_hist", "ax2"], ["hsum3"], keepdims=0),  # [1, batch]
         helper.make_node("Squeeze", ["hsum3", "ax0"], ["hsum"]),  # [batch]
         helper.make_node("Add", ["hsum", "bias"], ["s"]),
         helper.make_node("Unsqueeze", ["s", "ax1"], ["s2"]),  # [batch, 1]
         helper.make_node("Mul", ["s2", "vec"], ["shift"]),
         helper.make_node("Add", ["rows", "shift"], ["logits"]),
         helper.make_node("LogSoftmax", ["logits"], ["log_probs"], axis=1),
         helper.make_node("Cast", ["token"], ["tokf"], to=f),
         helper.make_node("Reshape", ["tokf", "shape3"], ["tok3"]),
         helper.make_node("Concat", ["past_hist", "tok3"], ["present_hist"], axis=2)],
        "decoder",
        [helper.make_tensor_value_info("token", TensorProto.INT64, ["batch"]),
         helper.make_tensor_value_info("bias", f, ["batch"]),
         helper.make_tensor_value_info("past_hist", f, [1, "batch", "past_len"])],
        [helper.make_tensor_value_info("log_probs", f, ["batch", V]),
         helper.make_tensor_value_info("present_hist", f, [1, "batch", "new_len"])],
        [helper.make_tensor("table", f, table.shape, table.reshape(-1).tolist()),
         helper.make_tensor("vec", f, vec.shape, vec.tolist()),
         helper.make_tensor("ax0", TensorProto.INT64, [1], [0]),
         helper.make_tensor("ax1", TensorProto.INT64, [1], [1]),
         helper.make_tensor("ax2", TensorProto.INT64, [1], [2]),
         helper.make_tensor("shape3", TensorProto.INT64, [3], [1, -1, 1])])
    sessions = []
    for graph, name in ((enc, "encoder.onnx"), (dec, "decoder.onnx")):
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        onnx.checker.check_model(model)
        onnx.save(model, tmp_path / name)
        sessions.append(ort.InferenceSession(str(tmp_path / name), providers=["CPUExecutionProvider"]))
    return sessions


def test_onnx_runner_matches_a_numpy_reference_of_the_same_model(tmp_path):
    table, vec = markov(4), np.linspace(-0.3, 0.3, V).astype(np.float32)
    encoder, decoder = _graphs(tmp_path, table, vec)
    runner = decoding.OnnxSeq2Seq(encoder, decoder, default_max_length=7)
    assert runner.batch_axes == {"past_hist": 1}

    def reference(prefix, static, cache):  # recomputes from the whole prefix: no cache at all
        logits = table[prefix[:, -1]] + (prefix[:, :-1].sum(1) + static["bias"])[:, None] * vec
        return logits - np.log(np.exp(logits).sum(1, keepdims=True)), cache

    src = np.array([[0, 1, 2], [2, 2, 0], [1, 0, 0], [0, 0, 0]], dtype=np.int64)
    feeds = {"src": src, "beam_size": np.array([1, 4, 4, 3]), "n_best": np.array([1, 2, 2, 1]),
             "max_length": np.array([7, 5, 6, 7]), "length_penalty": np.array([1.0, 0.6, 0.6, 0.0], np.float32)}
    out = runner(feeds)
    assert out["tokens"].shape[:2] == (4, 2) and out["scores"].shape == (4, 2)
    for i in range(4):
        want = decoding.search(reference, {"bias": src[i:i + 1].sum(1).astype(np.float64)}, {},
                               max_length=feeds["max_length"][i:i + 1], beam_size=int(feeds["beam_size"][i]),
                               n_best=int(feeds["n_best"][i]), length_penalty=float(feeds["length_penalty"][i]))[0]
        got = decoding.unpack({k: v[i] for k, v in out.items()})
        assert [t for t, _ in got] == [t for t, _ in want]
        assert np.allclose([s for _, s in got], [s for _, s in want], atol=1e-4)


def test_onnx_runner_without_option_feeds_is_greedy_with_the_default_length(tmp_path):
    table = markov(5)
    table[:, EOS] = -50.0
    encoder, decoder = _graphs(tmp_path, table, np.zeros(V, np.float32))
    runner = decoding.OnnxSeq2Seq(encoder, decoder, default_max_length=lambda feeds: feeds["src"].shape[1] + 1)
    out = runner({"src": np.zeros((2, 3), np.int64)})
    assert out["tokens"].shape == (2, 1, 4)
    assert (out["tokens"] >= 0).all()

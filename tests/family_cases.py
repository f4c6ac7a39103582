"""One served case per task family, for the contract test (tests/models/test_family_contract.py): a tiny ONNX
model built with onnx.helper (no torch, no training) with the files and metadata its serving.py needs, and
corpora of request items and parameters that the family accepts, and refuses naming a field. A family
added to the registry adds its case here."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

from app.examples import png, tiny_classifier
from models.common import text

F, I64 = TensorProto.FLOAT, TensorProto.INT64
WORDS = ["red", "green", "square", "circle", "ein", "hund", "läuft"]


@dataclass
class Case:
    build: Callable[[Path], None]  # writes model.onnx (and what else a version of the family holds) into a folder
    metadata: dict[str, Any]
    valid: list[Any]  # items the family answers
    invalid: list[tuple[Any, str]]  # items it refuses, and the field it names (as item 0 of a request)
    parameters: list[dict[str, Any]] = field(default_factory=lambda: [{}])
    bad_parameters: list[tuple[dict[str, Any], str]] = field(default_factory=list)
    # Counts serving took unbounded, which the schema bounds at 2**31 - 1 (the house rule: every integer bounded)
    bounded: list[dict[str, Any]] = field(default_factory=list)


def _save(folder: Path, name: str, nodes, inputs, outputs, inits=()) -> None:
    model = helper.make_model(helper.make_graph(nodes, name, inputs, outputs, list(inits)),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(folder / name))


def _value(name: str, kind: int, shape: list) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, kind, shape)


def _const(name: str, array: np.ndarray) -> onnx.TensorProto:
    return onnx.numpy_helper.from_array(array, name)


def _image(h: int = 12, w: int = 10, mode: str = "RGB") -> str:
    pixels = np.random.default_rng(h * w).integers(0, 256, (h, w, 3) if mode == "RGB" else (h, w), dtype=np.uint8)
    return base64.b64encode(png(pixels)).decode()


IMAGES_VALID = [{"image": _image()}, {"image": _image(40, 33, "L")}, {"image": "data:image/png;base64," + _image()},
                {"image": _image(), "name": "cat.png"},  # members other than image are not read
                base64.b64decode(_image())]  # a multipart file part
IMAGES_INVALID = [({}, "inputs[0].image"), ("iVBORw0KGgo", "inputs[0]"), ({"image": ""}, "inputs[0].image"),
                  ({"image": 5}, "inputs[0].image"), ({"image": "%%%"}, "inputs[0].image"),
                  ({"image": base64.b64encode(b"GIF89a nonsense").decode()}, "inputs[0].image"),
                  ([{"image": _image()}], "inputs[0]")]


def _classifier(folder: Path) -> None:
    onnx.save(tiny_classifier(classes=3), str(folder / "model.onnx"))


def _detector(folder: Path) -> None:
    """images [N, 3, 16, 16] -> predictions [N, 2, 4 + 2]: two fixed boxes, whatever the image."""
    boxes = np.array([[2, 2, 10, 12, 0.9, 0.1], [4, 3, 14, 15, 0.2, 0.7]], np.float32)
    _save(folder, "model.onnx",
          [helper.make_node("GlobalAveragePool", ["images"], ["pooled"]),
           helper.make_node("Reshape", ["pooled", "flat"], ["row"]),
           helper.make_node("MatMul", ["row", "zeros"], ["none"]),
           helper.make_node("Reshape", ["none", "grid"], ["shaped"]),
           helper.make_node("Add", ["shaped", "boxes"], ["predictions"])],
          [_value("images", F, ["batch", 3, 16, 16])], [_value("predictions", F, ["batch", 2, 6])],
          [_const("flat", np.array([-1, 1, 3], np.int64)), _const("zeros", np.zeros((3, 12), np.float32)),
           _const("grid", np.array([-1, 2, 6], np.int64)), _const("boxes", boxes)])


def _tokenizer(folder: Path, name: str) -> int:
    tok = text.train_tokenizer([" ".join(WORDS)] * 3, vocab_size=64, kind="word")
    text.save(tok, folder / name)
    return tok.get_vocab_size()


def _decoder(folder: Path, static: str, vocab: int) -> None:
    """token [N], static [N] -> log_probs [N, V]: from BOS the first word, then the next, then EOS."""
    table = np.full((vocab, vocab), -8.0, np.float32)
    table[text.BOS, 4], table[4, 5], table[5, text.EOS] = 0.0, 0.0, 0.0
    table[:, text.EOS] = np.maximum(table[:, text.EOS], -1.0)
    _save(folder, "decoder.onnx",
          [helper.make_node("Gather", ["table", "token"], ["rows"], axis=0),
           helper.make_node("Mul", [static, "zero"], ["nothing"]),
           helper.make_node("Unsqueeze", ["nothing", "ax1"], ["column"]),
           helper.make_node("Add", ["rows", "column"], ["logits"]),
           helper.make_node("LogSoftmax", ["logits"], ["log_probs"], axis=1)],
          [_value("token", I64, ["batch"]), _value(static, F, ["batch"])], [_value("log_probs", F, ["batch", vocab])],
          [_const("table", table), _const("zero", np.zeros(1, np.float32)), _const("ax1", np.array([1], np.int64))])


def _captioner(folder: Path) -> None:
    vocab = _tokenizer(folder, "target.tokenizer.json")
    _save(folder, "model.onnx", [helper.make_node("ReduceMean", ["image"], ["feat"], axes=[1, 2, 3], keepdims=0)],
          [_value("image", F, ["batch", 3, 8, 8])], [_value("feat", F, ["batch"])])
    _decoder(folder, "feat", vocab)


def _translator(folder: Path) -> None:
    _tokenizer(folder, "source.tokenizer.json")
    vocab = _tokenizer(folder, "target.tokenizer.json")
    _save(folder, "model.onnx", [helper.make_node("Cast", ["src"], ["srcf"], to=F),
                                 helper.make_node("ReduceSum", ["srcf", "ax1"], ["bias"], keepdims=0)],
          [_value("src", I64, ["batch", "src_len"])], [_value("bias", F, ["batch"])],
          [_const("ax1", np.array([1], np.int64))])
    _decoder(folder, "bias", vocab)


def _recommender(folder: Path) -> None:
    """user [N], ratings [N, 4] -> predicted [N, 4] (fixed), top_scores and top_items [N, 2]."""
    _save(folder, "model.onnx",
          [helper.make_node("Cast", ["user"], ["userf"], to=F),
           helper.make_node("Unsqueeze", ["userf", "ax1"], ["column"]),
           helper.make_node("Mul", ["column", "zero"], ["nothing"]),
           helper.make_node("Mul", ["ratings", "zero"], ["blank"]),
           helper.make_node("Add", ["blank", "nothing"], ["base"]),
           helper.make_node("Add", ["base", "scores"], ["predicted"]),
           helper.make_node("TopK", ["predicted", "k"], ["top_scores", "top_items"])],
          [_value("user", I64, ["batch"]), _value("ratings", F, ["batch", 4])],
          [_value("predicted", F, ["batch", 4]), _value("top_scores", F, ["batch", 2]),
           _value("top_items", I64, ["batch", 2])],
          [_const("ax1", np.array([1], np.int64)), _const("zero", np.zeros(1, np.float32)),
           _const("scores", np.array([3.5, 4.5, 2.0, 1.5], np.float32)), _const("k", np.array([2], np.int64))])


def _fraud(folder: Path) -> None:
    """features [N, 2] -> scores [N, 3]: sigmoid(sum) and each feature as its contribution."""
    _save(folder, "model.onnx",
          [helper.make_node("ReduceSum", ["features", "axes"], ["sum"], keepdims=1),
           helper.make_node("Sigmoid", ["sum"], ["score"]),
           helper.make_node("Concat", ["score", "features"], ["scores"], axis=1)],
          [_value("features", F, ["batch", 2])], [_value("scores", F, ["batch", 3])],
          [_const("axes", np.array([1], np.int64))])


def _linear(folder: Path) -> None:
    _save(folder, "model.onnx", [helper.make_node("MatMul", ["features", "w"], ["value"])],
          [_value("features", F, ["batch", 2])], [_value("value", F, ["batch", 1])],
          [_const("w", np.array([[0.5], [-2.0]], np.float32))])


IMAGE_META = {"preprocessing": {"size": [8, 8], "channels": 3, "mean": [0.5] * 3, "std": [0.25] * 3}}
BEAM_PARAMETERS = [{}, {"beam_size": 3, "n_best": 2}, {"beam_size": 1, "length_penalty": 0}, {"max_length": 4}]
BAD_BEAM_PARAMETERS = [({"beam_size": 0}, "parameters.beam_size"), ({"beam_size": 17}, "parameters.beam_size"),
                       ({"beam_size": 2, "n_best": 3}, "parameters.n_best"), ({"n_best": True}, "parameters.n_best"),
                       ({"length_penalty": -1}, "parameters.length_penalty"), ({"top_k": 1}, "parameters.top_k")]

CASES: dict[str, Case] = {
    "classification": Case(
        _classifier, {"labels": ["cat", "dog", "owl"], "preprocessing": {"size": [32, 32], "channels": 3}},
        IMAGES_VALID, IMAGES_INVALID, [{}, {"top_k": 2}, {"top_k": 99}],
        [({"top_k": 0}, "parameters.top_k"), ({"top_k": "2"}, "parameters.top_k"),
         ({"top_k": True}, "parameters.top_k"), ({"k": 1}, "parameters.k"), ({"top_k": 2**31}, "parameters.top_k")],
        bounded=[{"top_k": 2**31}]),
    "detection": Case(
        _detector, {"layout": "dlserve", "labels": ["red", "green"], "preprocessing": {"size": [16, 16]}},
        IMAGES_VALID, IMAGES_INVALID,
        [{}, {"score_threshold": 0, "iou_threshold": 1, "max_detections": 1}, {"score_threshold": 0.95}],
        [({"score_threshold": 1.5}, "parameters.score_threshold"),
         ({"max_detections": 0}, "parameters.max_detections"), ({"max_detections": 1001}, "parameters.max_detections"),
         ({"iou_threshold": "0.5"}, "parameters.iou_threshold")]),
    "captioning": Case(
        _captioner, {**IMAGE_META, "max_length": 6}, IMAGES_VALID, IMAGES_INVALID,
        BEAM_PARAMETERS, [*BAD_BEAM_PARAMETERS, ({"max_length": 1001}, "parameters.max_length"),
                          ({"length_penalty": 11}, "parameters.length_penalty")]),
    "translation": Case(
        _translator, {"max_source_tokens": 12, "max_length": 64, "source_lang": "de", "target_lang": "en"},
        ["ein hund läuft", {"text": "red square"}, {"text": " zebra "}, {"text": "ein " * 12}],
        [("", "inputs[0].text"), ("  \n", "inputs[0].text"), ({"text": ""}, "inputs[0].text"),
         ({"txt": "ein"}, "inputs[0].txt"), ({"text": "ein", "lang": "de"}, "inputs[0].lang"), (5, "inputs[0]"),
         ({"text": None}, "inputs[0].text"), ({"text": "ein " * 13}, "inputs[0].text"),
         ({"text": "x" * 10_001}, "inputs[0].text"), (["ein"], "inputs[0]")],
        BEAM_PARAMETERS, [*BAD_BEAM_PARAMETERS, ({"max_length": 0}, "parameters.max_length"),
                          ({"max_length": 100_001}, "parameters.max_length")]),
    "recommendation": Case(
        _recommender, {"users": [1, 2, "ann"], "items": [10, 11, 12, 13], "rating_range": [1, 5], "max_k": 10,
                       "mean_rating": 3.0, "titles": {"10": "Ten"}, "user_bias": [0.1, -0.2, 0.0],
                       "item_bias": [0.5, 0.3, -0.1, -0.4]},
        [{"user": 1}, {"user": "1", "k": 1}, {"user": "ann"}, {"user": 999}, {"user": 10**30},
         {"user": 2, "items": [11]}, {"ratings": [{"item": 10, "rating": 4}], "k": 2},
         {"ratings": [{"item": "x", "rating": 1}], "items": [10, "zz"]},
         {"ratings": [{"item": 12, "rating": 5.0}, {"item": 13, "rating": 1}]}],
        [({"user": True}, "inputs[0].user"), ({"user": None}, "inputs[0].user"), ({"user": ""}, "inputs[0].user"),
         ({"user": 1, "ratings": [{"item": 10, "rating": 4}]}, "inputs[0]"), ({}, "inputs[0]"),
         ({"user": 1, "k": 0}, "inputs[0].k"), ({"user": 1, "k": 11}, "inputs[0].k"),
         ({"user": 1, "k": 1, "items": [10]}, "inputs[0].k"), ({"ratings": []}, "inputs[0].ratings"),
         ({"ratings": [{"item": 10, "rating": 9}]}, "inputs[0].ratings[0].rating"),
         ({"ratings": [{"item": 10}]}, "inputs[0].ratings[0].rating"),
         ({"ratings": [{"item": 10, "rating": 2}, {"item": 10, "rating": 3}]}, "inputs[0].ratings[1].item"),
         ({"user": 1, "items": []}, "inputs[0].items"), ({"user": 1, "items": [10, [11]]}, "inputs[0].items[1]"),
         ({"user": 1, "cohort": 2}, "inputs[0].cohort"), ("1", "inputs[0]")],
        [{}, {"k": 1}, {"k": 10}],
        [({"k": 0}, "parameters.k"), ({"k": 2**31}, "parameters.k"), ({"top_k": 1}, "parameters.top_k")],
        bounded=[{"k": 2**31}]),
    "fraud": Case(
        _fraud, {"features": ["a", "b"], "threshold": 0.5, "ignored_columns": ["Time", "Class"]},
        [{"features": {"a": 1, "b": 2.5}}, {"features": {"b": -3e38, "a": 0}},
         {"features": {"a": 1, "b": 2, "Time": "12:00", "Class": 1}}],  # the training file's other columns: not read
        [({"features": {"a": 1}}, "inputs[0].features.b"), ({"features": {"a": "x", "b": 1}}, "inputs[0].features.a"),
         ({"features": {"a": 1e39, "b": 1}}, "inputs[0].features.a"), ({"features": {"a": None, "b": 1}},
                                                                        "inputs[0].features.a"),
         ({"features": {"a": 1, "b": 2, "c": 3}}, "inputs[0].features.c"), ({"features": [1, 2]}, "inputs[0].features"),
         ({"feature": {"a": 1, "b": 2}}, "inputs[0].feature"), ({"a": 1, "b": 2}, "inputs[0].a")],
        [{}, {"top_features": 0}, {"threshold": 0.9, "top_features": 1}],
        [({"top_features": -1}, "parameters.top_features"), ({"threshold": "high"}, "parameters.threshold"),
         ({"cutoff": 1}, "parameters.cutoff"), ({"top_features": 2**31}, "parameters.top_features")],
        bounded=[{"top_features": 2**31}]),
    "regression": Case(
        _linear, {"features": ["x1", "x2"]},
        [{"features": [1, 2.5]}, {"features": [-1e30, 1e30]}, {"features": [1, 2], "y": 3}],  # other members: not read
        [({"features": [1]}, "inputs[0].features"), ({"features": [1, 1e31]}, "inputs[0].features[1]"),
         ({"features": [True, 1]}, "inputs[0].features[0]"), ({"features": []}, "inputs[0].features"),
         ({}, "inputs[0].features")],
        [{}], [({"top_k": 1}, "parameters.top_k")]),
}


def metadata_json(task: str) -> str:
    return json.dumps(CASES[task].metadata)

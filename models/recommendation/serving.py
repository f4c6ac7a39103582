"""Recommendation serving (numpy only).

Inputs (one per element of "inputs"):
    {"user": id, "k": 10}                        top-k items the user has not rated
    {"ratings": [{"item", "rating"}, ...], "k"}  top-k for a new user, folded in from these ratings
    {"user": id, "items": [id, ...]}             predicted ratings for these (user, item) pairs
    {"ratings": [...], "items": [id, ...]}       the same for a new user
Outputs: {"items": [{"item", "score"[, "title"]}, ...], "known"} best first, or {"ratings": [{"item",
"rating", "known"}, ...]}.

Every input becomes the same two tensors, `user` [1] (-1 for a new user) and `ratings` [1, I], so all
request kinds batch together; ranking, exclusion of rated items and fold-in run in the graph.

A malformed input fails the request with a 422 naming the field ("inputs[1].items[3]"). An id that is
well-formed but unknown to the model (never rated in training) is answered, marked "known": false, with
the bias-only prediction: the mean rating plus the known side's bias (metadata.user_bias/item_bias; a new
user's is estimated from their ratings), the mean when neither side is known. A cold user's top-k ranks
items by their bias; ratings of unknown items are not used, and listed as "ignored_items". Versions
registered before the biases were recorded answer a cold user with the graph's fold-in of no ratings and
a cold item with the mean.

What each input asked for (k, or the items to rate) travels from preprocess to postprocess as the
road's per-input context: preprocess returns (feeds, context).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.common.errors import SHAPE, InputError
from models.recommendation.schemas import DEFAULT_K

EXCLUDED_BELOW = -1e8  # the graph scores rated items -1e9
BIAS_DAMPING = 5.0  # a new user's bias: their ratings' offsets from mean + item bias, averaged as if 5 more were 0


@dataclass(frozen=True)
class Spec:
    items: tuple[Any, ...]  # external ids as the client sees them (int where the id is a plain integer)
    user_index: dict[str, int]
    item_index: dict[str, int]
    titles: dict[int, str]
    lo: float
    hi: float
    max_k: int
    mean: float
    user_bias: np.ndarray | None  # [U], None for versions registered before the biases were recorded
    item_bias: np.ndarray | None  # [I]


@dataclass(frozen=True)
class Asked:
    """What one input asked for, carried from preprocess to postprocess."""

    k: int  # top-k; 0 when items are rated
    items: tuple[tuple[Any, int | None], ...]  # rated: (the id as sent, its index or None when cold)
    user: str  # "known" (trained on), "folded" (from ratings of known items) or "cold"
    bias: float  # the user's, for a cold item
    ignored: tuple[Any, ...] = ()  # rated items the model does not know


def _external(i: str) -> Any:
    return int(i) if i.isdigit() and (i == "0" or not i.startswith("0")) else i


def make_spec(signature: dict[str, Any], metadata: dict[str, Any], max_pixels: int = 0) -> Spec:
    names = {i["name"] for i in signature["inputs"]}
    outs = {o["name"] for o in signature["outputs"]}
    if names != {"user", "ratings"} or not {"predicted", "top_scores", "top_items"} <= outs:
        raise ValueError("a recommendation model takes inputs user [N] and ratings [N, I] and gives predicted, "
                         f"top_scores and top_items; this one takes {sorted(names)} and gives {sorted(outs)}")
    users, items = metadata.get("users"), metadata.get("items")
    if not users or not items:
        raise ValueError("the version's metadata lacks the user and item ids (metadata.users, metadata.items)")
    items = [str(x) for x in items]
    titles = metadata.get("titles") or {}
    lo, hi = metadata.get("rating_range") or [0.5, 5.0]
    index = {x: j for j, x in enumerate(items)}
    mean = metadata.get("mean_rating")
    return Spec(tuple(_external(x) for x in items), {str(u): j for j, u in enumerate(users)}, index,
                {index[k]: str(v) for k, v in titles.items() if k in index}, float(lo), float(hi),
                int(metadata.get("max_k") or len(items)), float(mean) if mean is not None else (lo + hi) / 2,
                _biases(metadata.get("user_bias"), len(users)), _biases(metadata.get("item_bias"), len(items)))


def _biases(values: Any, n: int) -> np.ndarray | None:
    if not isinstance(values, list) or len(values) != n:
        return None
    return np.asarray(values, np.float64)


def check_params(params: dict[str, Any]) -> dict[str, Any]:
    unknown = set(params) - {"k"}
    if unknown:
        raise InputError("parameters", f"unknown option(s) {sorted(unknown)}; recommendation takes k")
    k = params.get("k", DEFAULT_K)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InputError("parameters.k", "must be a positive integer")
    return {"k": k}


def _id(value: Any, field: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, str)) or value == "":
        raise InputError(field, f"must be an id (an integer or a string), got {value!r:.40}")
    return str(value)


def preprocess(item: Any, index: int, params: dict[str, Any],
               spec: Spec) -> tuple[dict[str, np.ndarray], Asked]:
    """One input -> ({"user": int64 [1], "ratings": float32 [1, I]}, what it asked for)."""
    where = f"inputs[{index}]"
    if not isinstance(item, dict):
        raise InputError(where, 'expected {"user": id} or {"ratings": [{"item", "rating"}, ...]}, '
                                'with "k" or "items"', SHAPE)
    extra = set(item) - {"user", "ratings", "k", "items"}
    if extra:
        raise InputError(f"{where}.{sorted(extra)[0]}", "unknown field; an input has user or ratings, and k or items",
                         SHAPE)
    has_user, has_ratings = "user" in item, "ratings" in item
    if has_user == has_ratings:
        raise InputError(where, 'give either "user" (a known user) or "ratings" (a new user), '
                                f"{'not both' if has_user else 'one of them'}", SHAPE)
    user = np.full(1, -1, np.int64)
    row = np.zeros((1, len(spec.items)), np.float32)
    kind, bias, ignored = "cold", 0.0, []
    if has_user:
        u = spec.user_index.get(_id(item["user"], f"{where}.user"))
        if u is not None:
            user[0], kind = u, "known"
            bias = float(spec.user_bias[u]) if spec.user_bias is not None else 0.0
    else:
        ratings = item["ratings"]
        if not isinstance(ratings, list) or not ratings:
            raise InputError(f"{where}.ratings", 'must be a non-empty list of {"item": id, "rating": number}')
        seen: set[str] = set()
        offsets = []
        for j, r in enumerate(ratings):
            f = f"{where}.ratings[{j}]"
            if not isinstance(r, dict) or set(r) != {"item", "rating"}:
                raise InputError(f, 'expected {"item": id, "rating": number}')
            iid = _id(r["item"], f"{f}.item")
            v = r["rating"]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
                    or not spec.lo <= v <= spec.hi:
                raise InputError(f"{f}.rating", f"must be a number from {spec.lo:g} to {spec.hi:g} (got {v!r:.40})")
            if iid in seen:
                raise InputError(f"{f}.item", f"item {r['item']!r} is rated twice")
            seen.add(iid)
            i = spec.item_index.get(iid)
            if i is None:
                ignored.append(r["item"])  # well-formed, but the model has nothing to tie it to
                continue
            row[0, i] = v
            offsets.append(v - spec.mean - (spec.item_bias[i] if spec.item_bias is not None else 0.0))
        if offsets:
            kind, bias = "folded", sum(offsets) / (len(offsets) + BIAS_DAMPING)
    if "items" in item:
        if "k" in item:
            raise InputError(f"{where}.k", 'give "k" (recommend) or "items" (rate these), not both', SHAPE)
        items = item["items"]
        if not isinstance(items, list) or not items:
            raise InputError(f"{where}.items", "must be a non-empty list of item ids")
        asked = Asked(0, tuple((x, spec.item_index.get(_id(x, f"{where}.items[{j}]"))) for j, x in enumerate(items)),
                      kind, bias, tuple(ignored))
    else:
        k = item.get("k", params["k"])
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= spec.max_k:
            raise InputError(f"{where}.k", f"must be an integer from 1 to {spec.max_k} (got {k!r:.40})")
        asked = Asked(k, (), kind, bias, tuple(ignored))
    return {"user": user, "ratings": row}, asked


def _cold_user(outputs: dict[str, np.ndarray], spec: Spec) -> np.ndarray:
    """[I] what a user the model knows nothing of is predicted: the mean plus each item's bias; for older
    versions, the graph's own fold-in of no ratings (this row's feeds: user -1, every item unrated)."""
    if spec.item_bias is None:
        return outputs["predicted"].reshape(-1).astype(np.float64)
    return np.clip(spec.mean + spec.item_bias, spec.lo, spec.hi)


def postprocess(outputs: dict[str, np.ndarray], params: dict[str, Any], spec: Spec,
                context: Asked) -> dict[str, Any]:
    asked, known_user = context, context.user != "cold"
    extra = {"ignored_items": list(asked.ignored)} if asked.ignored else {}
    if not asked.k:
        pred = outputs["predicted"].reshape(-1) if known_user else _cold_user(outputs, spec)
        cold_item = float(np.clip(spec.mean + asked.bias, spec.lo, spec.hi))
        rated = [{"item": spec.items[i], "rating": float(pred[i]), "known": known_user} if i is not None
                 else {"item": x, "rating": cold_item, "known": False} for x, i in asked.items]
        return {"ratings": rated, **extra}
    if known_user:
        scores = outputs["top_scores"].reshape(-1)[:asked.k].tolist()
        items = outputs["top_items"].reshape(-1)[:asked.k].tolist()
    else:
        cold = _cold_user(outputs, spec)
        items = np.argsort(-cold, kind="stable")[:asked.k].tolist()
        scores = cold[items].tolist()
    out = []
    for i, s in zip(items, scores, strict=False):
        if s <= EXCLUDED_BELOW:
            break  # fewer unrated items than k
        entry = {"item": spec.items[i], "score": float(s)}
        title = spec.titles.get(i)
        if title is not None:
            entry["title"] = title
        out.append(entry)
    return {"items": out, "known": known_user, **extra}

"""Recommendation serving (numpy only).

Inputs (one per element of "inputs"):
    {"user": id, "k": 10}                        top-k items the user has not rated
    {"ratings": [{"item", "rating"}, ...], "k"}  top-k for a new user, folded in from these ratings
    {"user": id, "items": [id, ...]}             predicted ratings for these (user, item) pairs
    {"ratings": [...], "items": [id, ...]}       the same for a new user
Outputs: {"items": [{"item", "score"[, "title"]}, ...]} best first, or {"ratings": [{"item", "rating"}, ...]}.

Every input becomes the same two tensors, `user` [1] (-1 for a new user) and `ratings` [1, I], so all
request kinds batch together; ranking, exclusion of rated items and fold-in run in the graph. Unknown
user or item ids are a 422 naming the field ("inputs[0].user", "inputs[1].items[3]").

What each input asked for (k, or the items to rate) travels from preprocess to postprocess as the
road's per-input context: preprocess returns (feeds, context).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.common.errors import InputError

DEFAULT_K = 10
EXCLUDED_BELOW = -1e8  # the graph scores rated items -1e9


@dataclass(frozen=True)
class Spec:
    items: tuple[Any, ...]  # external ids as the client sees them (int where the id is a plain integer)
    user_index: dict[str, int]
    item_index: dict[str, int]
    titles: dict[int, str]
    lo: float
    hi: float
    max_k: int


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
    return Spec(tuple(_external(x) for x in items), {str(u): j for j, u in enumerate(users)}, index,
                {index[k]: str(v) for k, v in titles.items() if k in index}, float(lo), float(hi),
                int(metadata.get("max_k") or len(items)))


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
               spec: Spec) -> tuple[dict[str, np.ndarray], tuple[str, Any]]:
    """One input -> ({"user": int64 [1], "ratings": float32 [1, I]}, ("rate", item indices) or ("top", k))."""
    where = f"inputs[{index}]"
    if not isinstance(item, dict):
        raise InputError(where, 'expected {"user": id} or {"ratings": [{"item", "rating"}, ...]}, '
                                'with "k" or "items"')
    extra = set(item) - {"user", "ratings", "k", "items"}
    if extra:
        raise InputError(f"{where}.{sorted(extra)[0]}", "unknown field; an input has user or ratings, and k or items")
    has_user, has_ratings = "user" in item, "ratings" in item
    if has_user == has_ratings:
        raise InputError(where, 'give either "user" (a known user) or "ratings" (a new user), '
                                f"{'not both' if has_user else 'one of them'}")
    user = np.full(1, -1, np.int64)
    row = np.zeros((1, len(spec.items)), np.float32)
    if has_user:
        uid = _id(item["user"], f"{where}.user")
        u = spec.user_index.get(uid)
        if u is None:
            raise InputError(f"{where}.user", f"unknown user id {item['user']!r}: this model was not trained on it; "
                                              "send their ratings instead to fold them in")
        user[0] = u
    else:
        ratings = item["ratings"]
        if not isinstance(ratings, list) or not ratings:
            raise InputError(f"{where}.ratings", 'must be a non-empty list of {"item": id, "rating": number}')
        for j, r in enumerate(ratings):
            f = f"{where}.ratings[{j}]"
            if not isinstance(r, dict) or set(r) != {"item", "rating"}:
                raise InputError(f, 'expected {"item": id, "rating": number}')
            i = spec.item_index.get(_id(r["item"], f"{f}.item"))
            if i is None:
                raise InputError(f"{f}.item", f"unknown item id {r['item']!r}")
            v = r["rating"]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
                    or not spec.lo <= v <= spec.hi:
                raise InputError(f"{f}.rating", f"must be a number from {spec.lo:g} to {spec.hi:g} (got {v!r:.40})")
            if row[0, i] > 0:
                raise InputError(f"{f}.item", f"item {r['item']!r} is rated twice")
            row[0, i] = v
    if "items" in item:
        if "k" in item:
            raise InputError(f"{where}.k", 'give "k" (recommend) or "items" (rate these), not both')
        items = item["items"]
        if not isinstance(items, list) or not items:
            raise InputError(f"{where}.items", "must be a non-empty list of item ids")
        idx = []
        for j, x in enumerate(items):
            i = spec.item_index.get(_id(x, f"{where}.items[{j}]"))
            if i is None:
                raise InputError(f"{where}.items[{j}]", f"unknown item id {x!r}")
            idx.append(i)
        asked: tuple[str, Any] = ("rate", idx)
    else:
        k = item.get("k", params["k"])
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= spec.max_k:
            raise InputError(f"{where}.k", f"must be an integer from 1 to {spec.max_k} (got {k!r:.40})")
        asked = ("top", k)
    return {"user": user, "ratings": row}, asked


def postprocess(outputs: dict[str, np.ndarray], params: dict[str, Any], spec: Spec,
                context: tuple[str, Any]) -> dict[str, Any]:
    kind, asked = context
    if kind == "rate":
        pred = outputs["predicted"].reshape(-1)
        return {"ratings": [{"item": spec.items[i], "rating": float(pred[i])} for i in asked]}
    scores = outputs["top_scores"].reshape(-1)[:asked]
    items = outputs["top_items"].reshape(-1)[:asked]
    out = []
    for i, s in zip(items.tolist(), scores.tolist(), strict=False):
        if s <= EXCLUDED_BELOW:
            break  # fewer unrated items than k
        entry = {"item": spec.items[i], "score": float(s)}
        title = spec.titles.get(i)
        if title is not None:
            entry["title"] = title
        out.append(entry)
    return {"items": out}

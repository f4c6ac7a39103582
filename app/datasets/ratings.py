"""A recommendation dataset's users and the ratings each gave, for the try-it page (pick a user, see what they
rated beside what the model recommends). Read with the family's own loader (numpy only) and indexed once per
dataset; the last few are kept in memory."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.datasets.service import dataset_path
from app.db.tables import Dataset
from app.errors import NotFound, PayloadTooLarge, Unprocessable
from app.registry.store import ArtifactStore
from models import family

TASK = "recommendation"
MAX_RATINGS = 5_000_000  # beyond, a dataset is not browsed here: its index would take the API's memory
_KEPT = 2
_cache: OrderedDict[str, RatingsIndex] = OrderedDict()
_lock = threading.Lock()


def client_id(text: str) -> Any:
    """An id as the recommendation API gives it back: a number where it is a plain integer (as serving does)."""
    return int(text) if text.isdigit() and (text == "0" or not text.startswith("0")) else text


@dataclass
class RatingsIndex:
    users: list[str]
    items: list[str]
    titles: dict[str, str]
    order: np.ndarray  # rating rows sorted by user, then rating (highest first), then time (latest first)
    starts: np.ndarray  # [U + 1]: user u's rows are order[starts[u]:starts[u + 1]]
    by_activity: np.ndarray  # user indices, most ratings first
    item: np.ndarray
    rating: np.ndarray
    time: np.ndarray | None
    user_index: dict[str, int]

    def count(self, u: int) -> int:
        return int(self.starts[u + 1] - self.starts[u])


def index_of(store: ArtifactStore, dataset: Dataset) -> RatingsIndex:
    if dataset.task != TASK:
        raise Unprocessable(f"dataset {dataset.id} is a {dataset.task} dataset; users and ratings are read from "
                            f"{TASK} datasets only", field="dataset_id")
    if (dataset.stats or {}).get("ratings", 0) > MAX_RATINGS:
        raise PayloadTooLarge(f"dataset {dataset.id} holds {dataset.stats['ratings']} ratings; it is browsed here "
                              f"up to {MAX_RATINGS}", limit_ratings=MAX_RATINGS)
    with _lock:
        if dataset.sha256 in _cache:
            _cache.move_to_end(dataset.sha256)
            return _cache[dataset.sha256]
    index = _build(store, dataset)  # outside the lock: reading a large file must not hold up other datasets
    with _lock:
        _cache[dataset.sha256] = index
        while len(_cache) > _KEPT:
            _cache.popitem(last=False)
    return index


def _build(store: ArtifactStore, dataset: Dataset) -> RatingsIndex:
    data = family(TASK).data.load(dataset_path(store, dataset), dataset.format)
    recent = -data.t if data.t is not None else np.zeros_like(data.u)
    order = np.lexsort((data.i, recent, -data.r, data.u))
    counts = np.bincount(data.u, minlength=len(data.users))
    starts = np.concatenate([[0], np.cumsum(counts)])
    return RatingsIndex(users=data.users, items=data.items, titles=dict(data.titles), order=order, starts=starts,
                        by_activity=np.lexsort((np.arange(len(counts)), -counts)), item=data.i, rating=data.r,
                        time=data.t, user_index={u: n for n, u in enumerate(data.users)})


def ratings_of(index: RatingsIndex, user: str, limit: int) -> tuple[list[dict[str, Any]], int]:
    """The user's ratings, highest first, and how many there are."""
    u = index.user_index.get(user)
    if u is None:
        raise NotFound(f"the dataset has no user {user!r}; GET /v1/datasets/{{id}}/users lists them", field="user")
    rows = index.order[index.starts[u]:index.starts[u + 1]]
    out = []
    for row in rows[:limit]:
        item = index.items[index.item[row]]
        out.append({"item": client_id(item), "title": index.titles.get(item), "rating": float(index.rating[row]),
                    "timestamp": int(index.time[row]) if index.time is not None else None})
    return out, len(rows)


def users_page(index: RatingsIndex, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
    """Users, those with the most ratings first."""
    page = index.by_activity[offset:offset + limit]
    return [{"user": client_id(index.users[u]), "ratings": index.count(int(u))} for u in page], len(index.users)

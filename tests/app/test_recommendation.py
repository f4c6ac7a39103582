"""The recommendation family through the real API: uploads and their 422s, training runs in this process
against the real database, artifact store and ONNX Runtime, and /predict: top-k for known users,
fold-in for new users, explicit pairs, unknown ids."""

from __future__ import annotations

import pytest

from app import examples
from tests.conftest import assert_item_error, assert_problem, upload_dataset
from tests.workers.synthetic import stored_zip
from workers.runner import run_training

# The subject is the family, the CLI or the job's checks, not the database: one backend (tests/conftest.py).
pytestmark = pytest.mark.one_backend

N_USERS, N_ITEMS = 60, 40


def ratings(seed: int = 0) -> list[tuple[int, int, int, int]]:
    """Two tastes: even users love items 1-20 and dislike 21-40, odd users the other way round; each
    user rates about half the items. (user, item, rating, timestamp), ids from 1 as in MovieLens."""
    return examples.ratings(N_USERS, N_ITEMS, seed)


def u_data(rows) -> bytes:
    return "".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in rows).encode()


def archive(rows) -> bytes:
    return stored_zip({"ml-tiny/u.data": u_data(rows),
                       "ml-tiny/u.item": "".join(f"{i}|Film {i} (1995)|01-Jan-1995||http://x|0\n"
                                                 for i in range(1, N_ITEMS + 1)).encode("latin-1")})


def upload(client, content: bytes, name: str, fmt: str | None = None):
    return upload_dataset(client, content, name, "recommendation", fmt)


@pytest.mark.parametrize("name, content, needles", [
    ("u.data", b"", ["line 1", "empty"]),
    ("u.data", b"1\t2\t5\t0\n1\t3\t7\t0\n", ["line 2", "rating 7 is out of range"]),
    ("u.data", b"1\t2\t5\t0\n1\t3\tfive\t0\n", ["line 2", "'five' is not a number"]),
    ("ratings.dat", b"1::2::5::0\n1::3::0::0\n", ["line 2", "out of range"]),
    ("ratings.csv", b"userId,movieId,rating,timestamp\n1,2,4.5,0\n1,3,6,0\n", ["line 3", "out of range"]),
    ("r.csv", b"user,item,rating\na,b,3\na,c,-1\n", ["line 3", "out of range"]),
    ("r.csv", b"user,item,rating\n", ["no ratings"]),
    ("hello.data", b"hello world\n", ["line 1", "not a MovieLens ratings file"]),
])
def test_bad_uploads_are_422_naming_the_line(client, name, content, needles):
    assert_problem(upload(client, content, name), 422, *needles)


def test_movielens_files_are_told_apart_by_content(client):
    rows = ratings()[:50]
    for name, content in [
        ("u.data", u_data(rows)),
        ("ratings.dat", "".join(f"{u}::{i}::{r}::{t}\n" for u, i, r, t in rows).encode()),
        ("ratings.csv", ("userId,movieId,rating,timestamp\n" + "".join(f"{u},{i},{r}.0,{t}\n" for u, i, r, t in rows)
                         ).encode()),
        ("tiny.zip", archive(rows)),
    ]:
        r = upload(client, content, name)
        assert r.status_code == 201, r.text
        assert r.json()["format"] == "movielens" and r.json()["stats"]["ratings"] == 50
    assert r.json()["stats"]["titles"] > 0
    r = upload(client, b"user,item,rating\nann,film-a,4\nbob,film-a,2\n", "mine.csv")
    assert r.status_code == 201 and r.json()["format"] == "csv" and r.json()["stats"]["users"] == 2


def _train(client, settings, content: bytes, filename: str, config: dict, name: str) -> dict:
    ds = upload(client, content, filename)
    assert ds.status_code in (200, 201), ds.text
    job = client.post("/v1/jobs", json={"task": "recommendation", "dataset_id": ds.json()["id"], "config": config,
                                        "register_as": name, "alias": "production"})
    assert job.status_code == 202, job.text
    jid = job.json()["id"]
    assert run_training(jid, settings) == "succeeded", client.get(f"/v1/jobs/{jid}").json()
    return client.get(f"/v1/models/{name}/versions/1").json()


def predict(client, name, *inputs, **params):
    return client.post(f"/v1/models/{name}/predict", json={"inputs": list(inputs), "parameters": params})


@pytest.mark.parametrize("config", [
    {"epochs": 60, "factors": 4, "val_fraction": 0.1},  # bpmf, the default
    {"arch": "mf", "epochs": 6, "factors": 4, "reg": 0.05, "bias_reg": 1.0, "val_fraction": 0.1},
], ids=["bpmf", "mf"])
def test_matrix_factorisation_beats_the_mean_and_serves_every_request_kind(client, settings, config):
    rows = ratings()
    version = _train(client, settings, archive(rows), "tiny.zip", config, "films")
    meta, metrics = version["metadata"], version["metrics"]
    assert meta["config"]["arch"] == config.get("arch", "bpmf")
    parity = meta["parity"]  # ratings up to 5: the runner's atol + rtol x |value|
    assert parity["max_abs_diff"] <= parity["atol"] + 5 * parity["rtol"]
    assert metrics["val_rmse"] < 0.6 * metrics["val_baseline_rmse"]  # the global mean rating
    assert 0 < metrics["val_mae"] <= metrics["val_rmse"]
    # each user's held-out liked item among the ~20 items they never rated: chance is about 10/21
    assert metrics["val_hr_at_10"] > 0.8 and 0 < metrics["val_ndcg_at_10"] <= metrics["val_hr_at_10"]
    assert {i["name"] for i in version["inputs"]} == {"user", "ratings"}

    rated = {i for u, i, _, _ in rows if u == 2}
    r = predict(client, "films", {"user": 2, "k": 5}, {"user": 3}, k=3)
    assert r.status_code == 200, r.text
    top5, top3 = r.json()["outputs"]
    assert len(top5["items"]) == 5 and len(top3["items"]) == 3
    assert all(e["item"] not in rated for e in top5["items"])  # what user 2 rated is excluded
    assert all(e["item"] > N_ITEMS // 2 for e in top5["items"])  # user 2 (odd index 1) likes items 21-40
    assert top5["items"][0]["title"] == f"Film {top5['items'][0]['item']} (1995)"
    scores = [e["score"] for e in top5["items"]]
    assert scores == sorted(scores, reverse=True)

    # a new user who loves items 1-5 and dislikes 21-25, folded in without retraining
    new = [{"item": i, "rating": 5} for i in range(1, 6)] + [{"item": i, "rating": 1} for i in range(21, 26)]
    r = predict(client, "films", {"ratings": new, "k": 5}, {"ratings": new, "items": [6, 30]},
                {"user": 1, "items": [2, 39]})
    assert r.status_code == 200, r.text
    fold, pairs_new, pairs_known = r.json()["outputs"]
    assert all(6 <= e["item"] <= 20 for e in fold["items"])
    assert fold["known"] and all(p["known"] for p in pairs_new["ratings"] + pairs_known["ratings"])
    liked, disliked = (p["rating"] for p in pairs_new["ratings"])
    assert [p["item"] for p in pairs_new["ratings"]] == [6, 30] and liked > disliked + 1.5
    assert pairs_known["ratings"][0]["rating"] > pairs_known["ratings"][1]["rating"] + 1.5


@pytest.mark.parametrize("body, field, needle", [
    ({"ratings": [{"item": 3, "rating": 9}]}, "inputs[1].ratings[0].rating", "must be a number from 1 to 5"),
    ({"ratings": [{"item": 3, "rating": 3.5e38}]}, "inputs[1].ratings[0].rating", "must be a number from 1 to 5"),
    ({"ratings": [{"item": 3, "rating": -1e308}]}, "inputs[1].ratings[0].rating", "must be a number from 1 to 5"),
    ({"ratings": [{"item": 888, "rating": 4}, {"item": 888, "rating": 2}]}, "inputs[1].ratings[1].item",
     "rated twice"),
    ({"user": 1, "items": [3, [777]]}, "inputs[1].items[1]", "must be an id"),
    ({"user": 1, "ratings": [{"item": 3, "rating": 4}]}, "inputs[1]", "not both"),
    ({"user": 1, "k": 0}, "inputs[1].k", "must be an integer between 1 and"),
    ({"user": True}, "inputs[1].user", "must be an id"),
    ({"user": 1, "cohort": 2}, "inputs[1].cohort", "unknown field"),
])
def test_malformed_inputs_are_422_naming_them(client, settings, body, field, needle):
    """A bad value is that input's fault, answered in its place (the good input is answered); an input not
    of the form (user and ratings, an unknown member) fails the request."""
    _train(client, settings, u_data(ratings()), "u.data", {"epochs": 1, "factors": 2}, "films")
    r = predict(client, "films", {"user": 1}, body)
    if needle in ("not both", "unknown field"):
        assert assert_problem(r, 422, field, needle)["field"] == field
    else:
        assert_item_error(r, 1, 422, field, needle)
        assert r.json()["outputs"][0]["known"] is True


def test_the_rbm_trains_and_folds_in_a_new_user(client, settings):
    version = _train(client, settings, u_data(ratings()), "u.data",
                     {"arch": "rbm", "epochs": 30, "hidden": 16, "batch_size": 8, "lr": 0.5}, "rbm")
    metrics = version["metrics"]
    assert metrics["val_rmse"] < 0.8 * metrics["val_baseline_rmse"]
    parity = version["metadata"]["parity"]
    assert parity["max_abs_diff"] <= parity["atol"] + 5 * parity["rtol"]
    new = [{"item": i, "rating": 5} for i in range(1, 8)] + [{"item": i, "rating": 1} for i in range(21, 28)]
    r = predict(client, "rbm", {"ratings": new, "items": [10, 35]}, {"user": 1, "k": 3})
    assert r.status_code == 200, r.text
    pairs, top = r.json()["outputs"]
    assert pairs["ratings"][0]["rating"] > pairs["ratings"][1]["rating"] and len(top["items"]) == 3


def test_ids_never_rated_in_training_are_answered_per_item_with_the_bias_only_prediction(client, settings):
    """A request for 152 items of which one is cold was a 422 for all. Now the cold pair gets mean + the known
    side's bias, marked "known": false; the rest are the model's own predictions."""
    version = _train(client, settings, u_data(ratings()), "u.data",
                     {"arch": "mf", "epochs": 4, "factors": 4, "reg": 0.05, "bias_reg": 1.0}, "films")
    meta = version["metadata"]
    mean, ub, ib = meta["mean_rating"], meta["user_bias"], meta["item_bias"]
    assert len(ub) == len(meta["users"]) and len(ib) == len(meta["items"]) and any(ib)
    users, items = [str(u) for u in meta["users"]], [str(i) for i in meta["items"]]
    u1, i7 = users.index("1"), items.index("7")
    asked = [*range(1, N_ITEMS + 1)] * 4 + [*range(1, 8)] + ["never-rated"]  # 168 items, one cold
    r = predict(client, "films", {"user": 1, "items": asked}, {"user": "stranger", "items": [7, "never-rated"]},
                {"user": "stranger", "k": 3},
                {"ratings": [{"item": 7, "rating": 5}, {"item": "nope", "rating": 1}], "items": ["nope"]})
    assert r.status_code == 200, r.text
    known_user, cold_user, cold_top, folded = r.json()["outputs"]
    *rest, cold = known_user["ratings"]
    assert len(rest) == len(asked) - 1 and all(p["known"] for p in rest)
    assert cold == {"item": "never-rated", "rating": pytest.approx(mean + ub[u1], abs=1e-3), "known": False}
    assert cold_user["ratings"] == [{"item": 7, "rating": pytest.approx(mean + ib[i7], abs=1e-3), "known": False},
                                    {"item": "never-rated", "rating": pytest.approx(mean, abs=1e-3), "known": False}]
    best = sorted(range(len(items)), key=lambda j: -ib[j])[:3]
    assert not cold_top["known"] and [e["item"] for e in cold_top["items"]] == [int(items[j]) for j in best]
    assert folded["ignored_items"] == ["nope"] and folded["ratings"][0]["known"] is False
    assert folded["ratings"][0]["rating"] > mean  # one 5 on an item: a user who rates above the mean

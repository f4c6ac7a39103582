"""Every alias move recorded (who, from, to, when), its history read back, and a rollback that /predict
follows at once; 409 when there is nothing to roll back to."""

import json
import time

import numpy as np

from tests import onnx_models
from tests.app.test_predict import LABELS, b64
from tests.app.test_web_session import make_key
from tests.conftest import assert_problem, upload


def moves(client, name="m", alias="production") -> list[tuple]:
    r = client.get(f"/v1/models/{name}/aliases/{alias}/history")
    assert r.status_code == 200, r.text
    return [(e["from_version"], e["to_version"], e["actor"]) for e in r.json()["items"]]


def test_moves_are_recorded_with_who_made_them_newest_first(client, settings, tiny_onnx):
    for _ in range(3):
        upload(client, "m", tiny_onnx)
    trainer = {"Authorization": f"Bearer {make_key(settings, ['train'])}"}
    assert client.put("/v1/models/m/aliases/production", json={"version": 1}).status_code == 200
    assert client.put("/v1/models/m/aliases/production", json={"version": 2}, headers=trainer).status_code == 200
    client.put("/v1/models/m/aliases/production", json={"version": 2})  # no move: not recorded
    client.put("/v1/models/m/aliases/production", json={"version": 3})
    assert moves(client) == [(2, 3, "DLSERVE_ADMIN_KEY"), (1, 2, "train key"), (None, 1, "DLSERVE_ADMIN_KEY")]
    body = client.get("/v1/models/m/aliases/production/history", params={"limit": 1, "offset": 1}).json()
    assert body["version"] == 3 and body["total"] == 3 and len(body["items"]) == 1 and body["items"][0]["at"]
    assert client.get("/v1/models/m/aliases/canary/history").json() == {
        "name": "m", "alias": "canary", "version": None, "items": [], "total": 0, "limit": 50, "offset": 0}
    assert_problem(client.get("/v1/models/nope/aliases/production/history"), 404, "no model named 'nope'")


def test_rollback_goes_back_and_a_second_one_undoes_it(client, settings, tiny_onnx):
    for _ in range(3):
        upload(client, "m", tiny_onnx)
    for v in (1, 3):
        client.put("/v1/models/m/aliases/production", json={"version": v})
    trainer = {"Authorization": f"Bearer {make_key(settings, ['train'])}"}
    r = client.post("/v1/models/m/aliases/production/rollback", headers=trainer)
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 1 and r.json()["alias"] == "production"
    assert moves(client)[0] == (3, 1, "train key")
    assert client.post("/v1/models/m/aliases/production/rollback").json()["version"] == 3
    assert client.get("/v1/models/m").json()["aliases"] == {"production": 3}


def test_nothing_to_roll_back_to_is_409(client, tiny_onnx):
    upload(client, "m", tiny_onnx)
    upload(client, "m", tiny_onnx)
    client.put("/v1/models/m/aliases/production", json={"version": 1})
    assert_problem(client.post("/v1/models/m/aliases/production/rollback"), 409, "nothing to roll back to")
    client.put("/v1/models/m/aliases/production", json={"version": 2})
    assert client.delete("/v1/models/m/versions/1").status_code == 204
    body = assert_problem(client.post("/v1/models/m/aliases/production/rollback"), 409, "has been deleted")
    assert body["previous_version"] == 1
    assert client.get("/v1/models/m").json()["aliases"] == {"production": 2}
    assert_problem(client.post("/v1/models/m/aliases/canary/rollback"), 404, "no alias 'canary'")


def test_a_deleted_alias_keeps_its_history(client, tiny_onnx):
    upload(client, "m", tiny_onnx)
    client.put("/v1/models/m/aliases/beta", json={"version": 1})
    assert client.delete("/v1/models/m/aliases/beta").status_code == 204
    assert moves(client, alias="beta") == [(1, None, "DLSERVE_ADMIN_KEY"), (None, 1, "DLSERVE_ADMIN_KEY")]
    assert client.get("/v1/models/m/aliases/beta/history").json()["version"] is None
    client.put("/v1/models/m/aliases/beta", json={"version": 1})
    assert_problem(client.post("/v1/models/m/aliases/beta/rollback"), 409, "nothing to roll back to")


def test_a_read_key_sees_the_history_and_cannot_roll_back(client, settings, tiny_onnx):
    upload(client, "m", tiny_onnx)
    client.put("/v1/models/m/aliases/production", json={"version": 1})
    reader = {"Authorization": f"Bearer {make_key(settings, ['read'])}"}
    assert client.get("/v1/models/m/aliases/production/history", headers=reader).status_code == 200
    assert_problem(client.post("/v1/models/m/aliases/production/rollback", headers=reader), 403, "'train'")


def test_predict_follows_a_rollback(client, tiny_onnx):
    for _ in range(2):
        upload(client, "m", tiny_onnx, metadata=json.dumps({"labels": LABELS}))
    image = {"image": b64(onnx_models.png(np.zeros((32, 32, 3), np.uint8)))}

    def served(want: int) -> int:
        # the API loads and warms the version an alias moves to before traffic follows it
        deadline = time.monotonic() + 10
        while (got := client.post("/v1/models/m/predict", json={"inputs": [image]}).json()["version"]) != want \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        return got

    client.put("/v1/models/m/aliases/production", json={"version": 1})
    client.put("/v1/models/m/aliases/production", json={"version": 2})
    assert served(2) == 2
    client.post("/v1/models/m/aliases/production/rollback")
    assert served(1) == 1

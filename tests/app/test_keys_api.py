"""Keys over HTTP (/v1/keys, admin only), their expiry, and the read scope."""

import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from app.db.session import make_engine
from app.db.tables import ApiKey
from tests.conftest import assert_problem, upload


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def make(client, *scopes, **extra) -> dict:
    r = client.post("/v1/keys", json={"scopes": list(scopes), **extra})
    assert r.status_code == 201, r.text
    return r.json()


def test_create_shows_the_secret_once_and_list_never(client):
    made = make(client, "predict", "train", name="ci")
    assert made["key"].startswith(f"dls_{made['prefix']}_") and made["scopes"] == ["predict", "train"]
    assert made["state"] == "active" and made["expires_at"] is None
    listed = client.get("/v1/keys").json()
    assert listed["total"] == 1
    assert made["key"] not in str(listed) and listed["items"][0]["name"] == "ci"
    assert "key" not in listed["items"][0]
    assert client.get("/v1/models", headers=bearer(made["key"])).status_code == 200


def test_revoke_is_immediate_in_this_process_and_listed(client):
    made = make(client, "predict")
    assert client.get("/v1/models", headers=bearer(made["key"])).status_code == 200  # now cached
    assert client.delete(f"/v1/keys/{made['prefix']}").status_code == 204
    assert_problem(client.get("/v1/models", headers=bearer(made["key"])), 401, "revoked")
    assert client.get(f"/v1/keys/{made['prefix']}").json()["state"] == "revoked"
    assert client.post(f"/v1/keys/{made['prefix']}/revoke").json()["state"] == "revoked"  # idempotent
    assert_problem(client.delete("/v1/keys/nosuchprefix"), 404, "nosuchprefix")


def test_expired_key_is_refused_saying_it_expired(client, settings):
    soon = make(client, "predict", expires_in_s=1)
    assert client.get("/v1/models", headers=bearer(soon["key"])).status_code == 200  # cached from here on
    time.sleep(max(0.0, datetime.fromisoformat(soon["expires_at"]).timestamp() - time.time()) + 0.05)
    assert_problem(client.get("/v1/models", headers=bearer(soon["key"])), 401, "expired")

    made = make(client, "predict", expires_in_s=3600)
    engine = make_engine(settings.resolved_database_url)
    with engine.begin() as conn:
        conn.execute(update(ApiKey).where(ApiKey.prefix == made["prefix"])
                     .values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    engine.dispose()
    assert_problem(client.get("/v1/models", headers=bearer(made["key"])), 401, "expired")
    assert client.get(f"/v1/keys/{made['prefix']}").json()["state"] == "expired"


def test_bad_key_requests_are_422_naming_the_field(client):
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    assert_problem(client.post("/v1/keys", json={"scopes": ["root"]}), 422, "scopes")
    assert_problem(client.post("/v1/keys", json={"scopes": []}), 422)
    assert_problem(client.post("/v1/keys", json={"scopes": ["read"], "expires_at": past}), 422, "past")
    assert_problem(client.post("/v1/keys", json={"scopes": ["read"], "expires_in_s": 0}), 422)
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert_problem(client.post("/v1/keys", json={"scopes": ["read"], "expires_at": future, "expires_in_s": 5}),
                   422, "not both")


def test_only_admin_manages_keys(client):
    train = make(client, "train")["key"]
    assert_problem(client.get("/v1/keys", headers=bearer(train)), 403, "admin")
    assert_problem(client.post("/v1/keys", json={"scopes": ["admin"]}, headers=bearer(train)), 403, "admin")
    client.headers.pop("Authorization")
    assert_problem(client.get("/v1/keys"), 401)


def test_read_scope_sees_everything_and_changes_nothing(client, tiny_onnx):
    upload(client, "m", tiny_onnx)
    read = bearer(make(client, "read")["key"])
    predict = bearer(make(client, "predict")["key"])
    train = bearer(make(client, "train")["key"])
    for path in ("/v1/datasets", "/v1/jobs", "/v1/models", "/v1/models/m"):
        assert client.get(path, headers=read).status_code == 200, path
        assert client.get(path, headers=train).status_code == 200, path
    assert_problem(client.get("/v1/jobs/abc", headers=read), 404)  # past the scope check
    assert_problem(client.get("/v1/jobs", headers=predict), 403, "'read'")
    assert_problem(client.post("/v1/models/m/predict", json={"inputs": [{}]}, headers=read), 403, "predict")
    assert_problem(client.delete("/v1/models/m/versions/1", headers=read), 403, "train")
    assert_problem(client.post("/v1/jobs", json={"task": "fraud", "dataset_id": "x"}, headers=read), 403, "train")
    assert_problem(client.post("/v1/datasets", files={"file": ("a.csv", b"a")}, data={"task": "fraud"},
                               headers=read), 403, "train")

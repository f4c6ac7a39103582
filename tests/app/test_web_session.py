"""Browser sessions: a key traded for an HttpOnly cookie, scopes kept, CSRF on unsafe methods, sign-out,
revocation, expiry, the sign-in limit, and the key never stored, logged or echoed."""

import logging
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select

from app.auth import create_key, hash_key
from app.db.base import utcnow
from app.db.session import make_engine, make_sessionmaker
from app.db.tables import WebSession
from app.main import create_app
from tests.conftest import ADMIN_KEY, assert_problem, upload


def make_key(settings, scopes, expires_at=None):
    engine = make_engine(settings.resolved_database_url)
    with make_sessionmaker(engine)() as s:
        _, key = create_key(s, scopes, f"{'+'.join(scopes)} key", expires_at)
        s.commit()
    engine.dispose()
    return key


def rows(settings) -> list[WebSession]:
    engine = make_engine(settings.resolved_database_url)
    with make_sessionmaker(engine)() as s:
        found = list(s.scalars(select(WebSession)))
    engine.dispose()
    return found


def browser(client, key: str) -> dict:
    """Signs the client in with `key` and takes its Authorization header away: the cookie alone signs."""
    client.headers.pop("Authorization", None)
    r = client.post("/v1/session", json={"key": key})
    assert r.status_code == 201, r.text
    return r.json()


def test_sign_in_sets_an_httponly_strict_cookie_and_the_cookie_signs_requests(client, settings, caplog):
    key = make_key(settings, ["train"])
    caplog.set_level(logging.DEBUG)
    client.headers.pop("Authorization")
    r = client.post("/v1/session", json={"key": key})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["name"] == "train key" and body["scopes"] == ["train"] and body["csrf_token"]
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("dlserve_session=") and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Path=/" in cookie and "Secure" not in cookie and "Max-Age=43200" in cookie
    assert key not in r.text and key not in cookie and r.headers["cache-control"] == "no-store"
    assert all(key not in rec.getMessage() for rec in caplog.records)
    # stored hashed: the cookie's token is nowhere in the database, its sha256 is
    token = client.cookies["dlserve_session"]
    assert [s.token_hash for s in rows(settings)] == [hash_key(token)]

    assert client.get("/v1/jobs").status_code == 200
    assert client.get("/v1/session").json() == body
    assert client.get("/v1/session").headers["cache-control"] == "no-store"


def test_unsafe_methods_signed_by_the_cookie_need_the_csrf_token(client, settings, tiny_onnx):
    csrf = browser(client, make_key(settings, ["train"]))["csrf_token"]
    files, data = {"file": ("m.onnx", tiny_onnx)}, {"task": "classification"}
    body = assert_problem(client.post("/v1/models/m/versions", files=files, data=data), 403, "X-CSRF-Token")
    assert body["field"] == "header.X-CSRF-Token"
    wrong = csrf[:-1] + ("1" if csrf.endswith("0") else "0")  # another token, whatever its last character was
    assert_problem(client.post("/v1/models/m/versions", files=files, data=data,
                               headers={"X-CSRF-Token": wrong}), 403, "X-CSRF-Token")
    assert client.post("/v1/models/m/versions", files=files, data=data,
                       headers={"X-CSRF-Token": csrf}).status_code == 201
    assert_problem(client.put("/v1/models/m/aliases/production", json={"version": 1}), 403)
    assert client.put("/v1/models/m/aliases/production", json={"version": 1},
                      headers={"X-CSRF-Token": csrf}).status_code == 200


def test_a_bearer_header_is_judged_alone_even_beside_a_cookie(client, settings, tiny_onnx):
    browser(client, make_key(settings, ["read"]))
    r = client.post("/v1/models/m/versions", files={"file": ("m.onnx", tiny_onnx)}, data={"task": "classification"},
                    headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert r.status_code == 201  # no CSRF asked: the browser did not sign this one
    assert_problem(client.get("/v1/jobs", headers={"Authorization": "Bearer dls_x_y"}), 401)


def test_a_read_session_sees_everything_and_changes_nothing(client, settings, tiny_onnx):
    upload(client, "m", tiny_onnx)
    csrf = browser(client, make_key(settings, ["read"]))["csrf_token"]
    assert client.get("/v1/models/m").status_code == 200 and client.get("/v1/jobs").status_code == 200
    r = client.put("/v1/models/m/aliases/production", json={"version": 1}, headers={"X-CSRF-Token": csrf})
    assert assert_problem(r, 403, "lacks the 'train' scope")["required_scope"] == "train"


def test_sign_out_ends_the_session_on_the_server_and_clears_the_cookie(client, settings):
    csrf = browser(client, make_key(settings, ["read"]))["csrf_token"]
    token = client.cookies["dlserve_session"]
    assert_problem(client.delete("/v1/session"), 403, "X-CSRF-Token")
    r = client.delete("/v1/session", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 204
    assert 'dlserve_session=""' in r.headers["set-cookie"] and "Max-Age=0" in r.headers["set-cookie"]
    assert rows(settings) == []
    assert_problem(client.get("/v1/session"), 401, "sign in")
    # the old cookie, replayed, signs nothing any more
    client.cookies.set("dlserve_session", token)
    assert_problem(client.get("/v1/jobs"), 401, "ended")


def test_revoking_the_key_ends_its_sessions(client, settings):
    key = make_key(settings, ["read"])
    browser(client, key)
    prefix = key.split("_")[1]
    assert client.delete(f"/v1/keys/{prefix}", headers={"Authorization": f"Bearer {ADMIN_KEY}"}).status_code == 204
    assert rows(settings) == []
    assert_problem(client.get("/v1/jobs"), 401)


def test_a_session_never_outlives_its_key(client, settings):
    soon = utcnow() + timedelta(minutes=5)
    client.headers.pop("Authorization")
    r = client.post("/v1/session", json={"key": make_key(settings, ["read"], expires_at=soon)})
    assert r.json()["expires_at"].startswith(soon.isoformat()[:19])
    max_age = int(r.headers["set-cookie"].split("Max-Age=")[1].split(";")[0])
    assert 290 <= max_age <= 300  # the key's five minutes, not the twelve hours of a session
    engine = make_engine(settings.resolved_database_url)
    with make_sessionmaker(engine)() as s:
        for row in s.scalars(select(WebSession)):
            row.expires_at = utcnow() - timedelta(seconds=1)
        s.commit()
    engine.dispose()
    assert_problem(client.get("/v1/jobs"), 401, "expired")


def test_missing_or_bad_sessions_are_401(client, settings):
    client.headers.pop("Authorization")
    assert_problem(client.get("/v1/session"), 401, "POST /v1/session")
    client.cookies.set("dlserve_session", "made-up")
    assert_problem(client.get("/v1/jobs"), 401, "sign in again")
    client.cookies.set("dlserve_session", "x" * 500)
    assert_problem(client.get("/v1/jobs"), 401, "not valid")
    client.cookies.clear()
    body = assert_problem(client.post("/v1/session", json={"key": "dls_000000000000_" + "a" * 32}), 401)
    assert "dls_000000000000" not in body["detail"]
    assert_problem(client.post("/v1/session", json={"key": "k" * 300}), 422, "body.key")
    assert_problem(client.post("/v1/session", json={"key": "k", "remember": True}), 422, "body.remember")


def test_failed_sign_ins_are_limited_per_address(settings):
    settings.signin_failures_per_minute = 3
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        for _ in range(3):
            assert_problem(c.post("/v1/session", json={"key": "dls_abc_wrong"}), 401)
        r = c.post("/v1/session", json={"key": ADMIN_KEY})
        assert_problem(r, 429, "too many failed sign-ins")
        assert 1 <= int(r.headers["retry-after"]) <= 60


def test_the_admin_key_of_the_settings_signs_in_until_it_changes(settings):
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        body = browser(c, ADMIN_KEY)
        assert body["name"] == "DLSERVE_ADMIN_KEY" and body["scopes"] == ["admin"]
        token = c.cookies["dlserve_session"]
        assert c.get("/v1/keys").status_code == 200
    settings.admin_key = "another-admin-key-0123456789"
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        c.cookies.set("dlserve_session", token)
        assert_problem(c.get("/v1/keys"), 401, "DLSERVE_ADMIN_KEY")


def test_the_cookie_is_secure_over_https(settings):
    with TestClient(create_app(settings), base_url="https://testserver", raise_server_exceptions=False) as c:
        r = c.post("/v1/session", json={"key": ADMIN_KEY})
        assert r.status_code == 201 and "Secure" in r.headers["set-cookie"]

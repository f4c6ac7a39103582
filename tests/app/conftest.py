"""Fixtures the API tests share (tests/conftest.py has the app, the client and the databases)."""

import pytest

from tests.workers import synthetic


@pytest.fixture
def dataset(client) -> dict:
    r = client.post("/v1/datasets", files={"file": ("d.npz", synthetic.npz_bytes(n=16, size=8))},
                    data={"task": "classification"})
    assert r.status_code == 201, r.text
    return r.json()

"""Helpers of the store tests. The S3-compatible server they run against (moto's server mode) and the `s3_uri`
and `bucket` fixtures are in tests/conftest.py: tests/e2e and tests/app use the same server."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from tests.conftest import ADMIN_KEY


def keys_in(bucket) -> list[str]:
    client, name, prefix = bucket
    return sorted(o["Key"][len(prefix):] for o in client.list_objects_v2(Bucket=name).get("Contents", []))


def s3_settings(home, database_url: str, s3_uri: str, **extra) -> Settings:
    """The settings of one host of a deployment on the object store: its own DLSERVE_HOME, nothing shared but
    the database and the bucket."""
    return Settings(home=home, database_url=database_url, admin_key=ADMIN_KEY, artifact_root=s3_uri,
                    s3_addressing_style="path", store_sweep_interval_s=0, _env_file=None, **extra)


@pytest.fixture
def api(tmp_path, database_url, s3_uri):
    """A client of one API host on the object store (its settings as `api.settings`)."""
    settings = s3_settings(tmp_path / "api", database_url, s3_uri)
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        c.headers["Authorization"] = f"Bearer {ADMIN_KEY}"
        c.settings = settings
        yield c

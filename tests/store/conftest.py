"""A real S3-compatible server for the store tests: moto's server mode on a free port of this machine (HTTP, the
same requests as to AWS or MinIO), once per test session; each test gets its own bucket and the standard AWS
variables pointing at it."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator

import pytest

from app.settings import Settings
from tests.conftest import ADMIN_KEY


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_uri(s3_endpoint, monkeypatch) -> str:
    """s3://<a new bucket>/dlserve, with AWS_ENDPOINT_URL and the credentials set as a deployment sets them."""
    import boto3

    for name, value in (("AWS_ENDPOINT_URL", s3_endpoint), ("AWS_ACCESS_KEY_ID", "test-key"),
                        ("AWS_SECRET_ACCESS_KEY", "test-secret"), ("AWS_REGION", "us-east-1")):
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    bucket = f"dlserve-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=bucket)
    return f"s3://{bucket}/dlserve"


@pytest.fixture
def bucket(s3_uri, s3_endpoint):
    """(boto3 client, bucket name, prefix) to look at what dlserve left in the bucket."""
    import boto3

    name = s3_uri.removeprefix("s3://").split("/")[0]
    return boto3.client("s3", endpoint_url=s3_endpoint), name, "dlserve/"


def keys_in(bucket) -> list[str]:
    client, name, prefix = bucket
    return sorted(o["Key"][len(prefix):] for o in client.list_objects_v2(Bucket=name).get("Contents", []))


def s3_settings(home, database_url: str, s3_uri: str, **extra) -> Settings:
    """The settings of one host of a deployment on the object store: its own DLSERVE_HOME, nothing shared but
    the database and the bucket."""
    return Settings(home=home, database_url=database_url, admin_key=ADMIN_KEY, artifact_root=s3_uri,
                    s3_addressing_style="path", store_sweep_interval_s=0, _env_file=None, **extra)

"""The object store as an S3-compatible bucket (AWS S3, MinIO, Ceph RGW, moto): DLSERVE_ARTIFACT_ROOT=s3://bucket/prefix.

Credentials and endpoint come from the standard AWS chain (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, a profile,
an instance role...), AWS_ENDPOINT_URL for a server other than AWS and AWS_REGION; path-style addressing is
DLSERVE_S3_ADDRESSING_STYLE=path (what MinIO behind a plain host name needs). Large files go up in parts
(boto3's managed transfer), which S3 shows only once the upload is completed; each object carries its sha256 in
its metadata, checked on every download. boto3 is imported here only, so a local-folder deployment never loads it.
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from urllib.parse import urlparse

from app.errors import ServiceUnavailable
from app.store.base import ArtifactCorrupt, ObjectInfo, ObjectStore, PendingUpload, check_key, sha256_file, verify

META_SHA = "sha256"  # x-amz-meta-sha256
REREADS = 3  # times an object rewritten while it is downloaded is read again


def parse_uri(uri: str) -> tuple[str, str]:
    """s3://bucket/some/prefix -> ("bucket", "some/prefix/"); the prefix may be empty."""
    parts = urlparse(uri)
    if parts.scheme != "s3" or not parts.netloc:
        raise ValueError(f"{uri!r} is not an s3://bucket/prefix address")
    prefix = parts.path.strip("/")
    return parts.netloc, f"{prefix}/" if prefix else ""


def _unavailable(fn):
    """A store that cannot be reached is a 503 for the API and a failed job for a worker, with the reason."""
    from boto3.exceptions import Boto3Error
    from botocore.exceptions import BotoCoreError, ClientError

    @functools.wraps(fn)
    def wrapper(self, *a, **kw):
        try:
            return fn(self, *a, **kw)
        except (ClientError, BotoCoreError, Boto3Error) as e:
            # the managed transfer wraps the request's error in its own (whose text names local paths)
            cause = e if not isinstance(e, Boto3Error) else (e.__cause__ or e.__context__ or e)
            if isinstance(cause, ClientError):
                code = cause.response.get("Error", {}).get("Code", "")
                if code in ("404", "NoSuchKey", "NotFound"):
                    raise FileNotFoundError(f"no object {a[0] if a else ''} in {self.uri}") from None
                raise ServiceUnavailable(f"the object store {self.uri} refused the request: "
                                         f"{code or 'error'}") from None
            reason = str(cause) if isinstance(cause, BotoCoreError) else type(cause).__name__
            raise ServiceUnavailable(f"the object store {self.uri} cannot be reached: {reason}") from None

    return wrapper


class S3Objects(ObjectStore):
    def __init__(self, uri: str, *, addressing_style: str = "auto", multipart_bytes: int = 64 * 2**20):
        import boto3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config

        self.uri = uri.rstrip("/")
        self.bucket, self.prefix = parse_uri(uri)
        self.client = boto3.session.Session().client(
            "s3", region_name=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None,
            endpoint_url=os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None,
            config=Config(s3={"addressing_style": addressing_style}, retries={"max_attempts": 5, "mode": "standard"},
                          connect_timeout=5, read_timeout=60))
        self.transfer = TransferConfig(multipart_threshold=multipart_bytes, multipart_chunksize=multipart_bytes,
                                       max_concurrency=4)

    def _full(self, key: str) -> str:
        return self.prefix + check_key(key)

    @_unavailable
    def put_file(self, key: str, path: Path, sha256: str | None = None) -> str:
        digest = sha256 or sha256_file(path)[0]
        self.client.upload_file(str(path), self.bucket, self._full(key), Config=self.transfer,
                                ExtraArgs={"Metadata": {META_SHA: digest}})
        return digest

    @_unavailable
    def get_to_path(self, key: str, dest: Path, sha256: str | None = None) -> None:
        from s3transfer.exceptions import S3DownloadFailedError

        full = self._full(key)
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        for attempt in range(REREADS + 1):
            want, etag = sha256, None
            if want is None:
                head = self.client.head_object(Bucket=self.bucket, Key=full)
                want, etag = head.get("Metadata", {}).get(META_SHA), head.get("ETag")
            tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.part")
            try:
                self.client.download_file(self.bucket, full, str(tmp), Config=self.transfer)
                verify(tmp, want, key, self.uri)
                os.replace(tmp, dest)
                return
            except (ArtifactCorrupt, S3DownloadFailedError) as e:
                # A run's checkpoint is put again every epoch, maybe while another host reads it: bytes that
                # differ from the sha256 of the HEAD before them, or that changed mid-download, are a newer
                # object when its ETag moved meanwhile, not an altered one: read it again
                rewritten = etag is not None and self.client.head_object(Bucket=self.bucket, Key=full).get(
                    "ETag") != etag
                if rewritten and attempt < REREADS:
                    continue
                if isinstance(e, ArtifactCorrupt):
                    raise
                raise ServiceUnavailable(f"the object {key} in {self.uri} changed while it was read; "
                                         "ask again") from None
            finally:
                tmp.unlink(missing_ok=True)

    @_unavailable
    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._full(key))
        except self.client.exceptions.ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    @_unavailable
    def stat(self, key: str) -> ObjectInfo | None:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._full(key))
        except self.client.exceptions.ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return ObjectInfo(key, head["ContentLength"], head["LastModified"])

    @_unavailable
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix + prefix)
        found = []  # listed whole before yielding, so the decorator's error mapping covers the requests
        for page in pages:
            for o in page.get("Contents", []):
                found.append(ObjectInfo(o["Key"][len(self.prefix):], o["Size"], o["LastModified"]))
        return iter(found)

    @_unavailable
    def delete(self, keys: Iterable[str]) -> None:
        batch = [self._full(k) for k in keys]
        for i in range(0, len(batch), 1000):  # S3's most per request
            self.client.delete_objects(Bucket=self.bucket, Delete={
                "Objects": [{"Key": k} for k in batch[i:i + 1000]], "Quiet": True})

    @_unavailable
    def pending_uploads(self) -> list[PendingUpload]:
        found = []
        for page in self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket,
                                                                                 Prefix=self.prefix):
            for u in page.get("Uploads", []):
                found.append(PendingUpload(u["Key"][len(self.prefix):], u["UploadId"], u["Initiated"]))
        return found

    @_unavailable
    def abort_upload(self, upload: PendingUpload) -> None:
        self.client.abort_multipart_upload(Bucket=self.bucket, Key=self.prefix + upload.key, UploadId=upload.upload_id)

    def check(self) -> str:
        try:
            _unavailable(lambda self: self.client.head_bucket(Bucket=self.bucket))(self)
        except FileNotFoundError:
            raise RuntimeError(f"the bucket of {self.uri} does not exist (NoSuchBucket)") from None
        return "ok"

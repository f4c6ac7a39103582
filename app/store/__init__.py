"""The artifact store's backends and the one place that picks one from the settings (see base.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.registry.store import ArtifactStore
    from app.settings import Settings


def open_store(settings: Settings) -> ArtifactStore:
    """DLSERVE_ARTIFACT_ROOT=s3://bucket/prefix: the bucket, with DLSERVE_HOME/cache/artifacts as this host's
    bounded cache of it; else the local folder (DLSERVE_HOME/artifacts by default), which is the store itself."""
    from app.registry.store import ArtifactStore

    remote_uri = settings.artifact_remote
    if remote_uri is None:
        return ArtifactStore(settings.resolved_artifact_root)
    from app.store.s3 import S3Objects

    remote = S3Objects(remote_uri, addressing_style=settings.s3_addressing_style,
                       multipart_bytes=settings.s3_multipart_bytes)
    return ArtifactStore(settings.resolved_artifact_root, remote, settings.cache_max_bytes)

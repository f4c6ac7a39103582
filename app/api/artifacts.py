"""Downloads: a model version's ONNX file (or, for a version of several files, a zip of its folder), and a
training run's files. Streamed from disk; file names are looked up, never used as paths.

A run's `weights.pt` (its state dict) and `last.pt` (its checkpoint: weights, optimiser state, random
generators, config) need the `train` scope: they are PyTorch pickles, which run code when loaded without
`weights_only=True`, and the checkpoint is the whole state of the run, not a served artifact. Who may train
may resume and reuse runs; a `read` key sees the list and downloads what is served (the ONNX graphs)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import FileResponse, Response, StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy import select

from app.api.deps import ReadKey, SessionDep, SettingsDep, StoreDep
from app.api.openapi import VersionPath
from app.auth import require_scope
from app.db.tables import ModelVersion
from app.errors import NotFound, Unprocessable
from app.inference import batching_config as batching
from app.jobs import service as jobs
from app.registry import service as registry
from app.registry import triton
from app.registry.downloads import Artifact, is_single_file, run_artifacts, zip_folder
from app.registry.store import MODEL_FILE
from models import TASKS, family

router = APIRouter(tags=["artifacts"])
ArtifactName = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$",
                                   description="a name from GET /v1/jobs/{job_id}/artifacts")]
_BINARY = {"schema": {"type": "string", "format": "binary"}}


class ArtifactOut(BaseModel):
    name: str
    kind: str = Field(description="model (the served ONNX graph), file (another file of the version), weights "
                                  "(the PyTorch state dict), checkpoint (the run's last checkpoint)")
    size_bytes: int
    sha256: str | None = Field(description="of model.onnx, as the registry recorded it")
    scope: str = Field(description="the key scope a download needs: read, or train for PyTorch pickles")
    modified_at: datetime


class ArtifactList(BaseModel):
    job_id: str
    items: list[ArtifactOut]


def _download_headers(sha256: str | None) -> dict[str, str]:
    return {"Cache-Control": "private, no-cache", **({"X-Model-Sha256": sha256} if sha256 else {})}


@router.get("/v1/models/{name}/versions/{version}/artifact", response_class=Response,
            responses={200: {"description": "the ONNX file; a zip of the version's folder when it has several files",
                             "content": {"application/octet-stream": _BINARY, "application/zip": _BINARY},
                             "headers": {"X-Model-Sha256": {"description": "sha256 of model.onnx",
                                                            "schema": {"type": "string"}}}}})
def download_version(name: str, version: VersionPath, _: ReadKey, session: SessionDep, store: StoreDep) -> Response:
    row = registry.get_version(session, name, version)
    key, sha256 = row.artifact_uri, row.sha256
    session.close()  # the download may take a while: it holds no database connection
    folder = store.fetch(key, sha256)
    if not (folder / MODEL_FILE).is_file():
        raise NotFound(f"the files of version {version} of {name!r} are missing from the artifact store")
    headers = _download_headers(sha256)
    if is_single_file(folder):
        headers["Repr-Digest"] = f"sha-256=:{base64.b64encode(bytes.fromhex(sha256)).decode()}:"
        return FileResponse(folder / MODEL_FILE, media_type="application/octet-stream", headers=headers,
                            filename=f"{name}-v{version}.onnx")
    headers["Content-Disposition"] = f'attachment; filename="{name}-v{version}.zip"'
    return StreamingResponse(zip_folder(folder), media_type="application/zip", headers=headers)


def _artifacts(session, store, job_id: str) -> dict[str, Artifact]:
    jobs.get(session, job_id)
    version = session.scalar(select(ModelVersion).where(ModelVersion.run_id == job_id))
    found = run_artifacts(store, job_id, version.artifact_uri if version else None, version.sha256 if version else None)
    session.close()
    return found


@router.get("/v1/jobs/{job_id}/artifacts", response_model=ArtifactList)
def list_run_artifacts(job_id: str, _: ReadKey, session: SessionDep, store: StoreDep) -> ArtifactList:
    """The files of the version the run registered, its PyTorch weights and its last checkpoint, as far as
    they exist (a failed run may have a checkpoint and nothing else)."""
    items = []
    for a in _artifacts(session, store, job_id).values():
        stat = a.path.stat()
        items.append(ArtifactOut(name=a.name, kind=a.kind, size_bytes=stat.st_size, sha256=a.sha256, scope=a.scope,
                                 modified_at=datetime.fromtimestamp(stat.st_mtime, UTC)))
    return ArtifactList(job_id=job_id, items=items)


@router.get("/v1/jobs/{job_id}/artifacts/{artifact}", response_class=Response,
            responses={200: {"description": "the file", "content": {"application/octet-stream": _BINARY}}})
def download_run_artifact(job_id: str, artifact: ArtifactName, who: ReadKey, session: SessionDep,
                          store: StoreDep) -> Response:
    """One file of the run. weights.pt and last.pt need the `train` scope: they are PyTorch pickles (load
    them with `torch.load(f, weights_only=True)`), and the checkpoint is the run's whole training state."""
    found = _artifacts(session, store, job_id)
    if artifact not in found:
        names = ", ".join(found) or "none yet"
        raise NotFound(f"job {job_id} has no artifact {artifact!r} (it has: {names})")
    a = found[artifact]
    require_scope(who, a.scope)
    return FileResponse(a.path, media_type="application/octet-stream", headers=_download_headers(a.sha256),
                        filename=f"{job_id[:8]}-{a.name}")


@router.get("/v1/models/{name}/versions/{version}/export", response_class=Response,
            responses={200: {"description": "a Triton model repository (docs/triton.md): <name>/config.pbtxt, "
                                            "<name>/labels.txt, <name>/<version>/model.onnx, as a tar.gz",
                             "content": {"application/gzip": _BINARY}}})
def export_version(name: str, version: VersionPath, _: ReadKey, session: SessionDep, store: StoreDep,
                   settings: SettingsDep,
                   format: Annotated[Literal["triton"], Query(description="the engine the folder is for")]) -> Response:
    """The version as a folder Triton Inference Server (or KServe's Triton runtime) serves as it is: the graph,
    its signature and this version's batching in config.pbtxt. Pre- and post-processing stay on the client
    (GET /v1/families says what, per family, under `triton`); a version of several graphs is a 422."""
    row = registry.get_version(session, name, version)
    key, sha256, signature, metadata, task = row.artifact_uri, row.sha256, row.signature, row.meta, row.task
    session.close()  # the download may take a while: it holds no database connection
    known = task in TASKS
    why = triton.refusal(task, family(task).multi_file, family(task).triton) if known else None
    if why:
        raise Unprocessable(f"version {version} of {name!r} cannot be exported for Triton: {why}", field="format")
    # this host's copy, fetched from the object store (checked against the registry's sha256) when it has none
    folder = store.fetch(key, sha256)
    if not (folder / MODEL_FILE).is_file():
        raise NotFound(f"the files of version {version} of {name!r} are missing from the artifact store")
    labels = triton.labels_text(metadata)
    config = triton.config_pbtxt(name, version, signature, batching.resolve(metadata, settings), labels is not None)
    headers = {"Cache-Control": "private, no-cache", "X-Model-Sha256": sha256,
               "Content-Disposition": f'attachment; filename="{name}-v{version}-triton.tar.gz"'}
    return StreamingResponse(triton.repository_tar_gz(name, version, folder, config, labels),
                             media_type="application/gzip", headers=headers)

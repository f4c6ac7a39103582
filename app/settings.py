"""The one settings class, read by the API, the workers, Alembic and the CLI alike (env prefix DLSERVE_)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

KNOWN_PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DLSERVE_", env_file=".env", extra="ignore")

    # Every field says what it does in its description: docs/operations.md and RELIABILITY.md print them
    # (app/settings_doc.py), and a test fails on a setting without one.

    # State of the embedded default
    home: Path = Field(Path("var"), description="where the embedded default keeps its state: the SQLite file, "
                       "artifacts, broker folders and the local admin key (private to the service's user)")
    database_url: str = Field("", description="SQLAlchemy URL, e.g. `postgresql+psycopg://user:pw@host/db`; "
                              "unset: a SQLite file `dlserve.db` under DLSERVE_HOME")
    broker_url: str = Field("", description="Celery broker, e.g. `redis://host:6379/0`; unset: a file-system "
                            "broker under DLSERVE_HOME/broker")
    artifact_root: str | None = Field(None, description="the artifact store (datasets, checkpoints, model "
                                      "versions): a folder, or `s3://bucket/prefix` for an S3-compatible object "
                                      "store (credentials, AWS_ENDPOINT_URL and AWS_REGION from the standard AWS "
                                      "chain); unset: DLSERVE_HOME/artifacts")

    # ONNX Runtime
    providers: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["cpu"], description="ONNX Runtime execution providers in order, e.g. `cuda,cpu`")
    cuda_device: int = Field(0, ge=0, le=1023, description="the GPU ONNX Runtime's CUDA provider serves on "
                             "(its device_id), when `cuda` is among the providers")
    intra_op_threads: int = Field(0, ge=0, description="ONNX Runtime threads within an operator (0: ORT decides)")
    inter_op_threads: int = Field(0, ge=0, description="ONNX Runtime threads across operators (0: ORT decides)")
    graph_optimization: str = Field("all", description="ONNX Runtime graph optimisation: disable, basic, "
                                    "extended or all")
    # ORT's pool threads busy-wait between runs by default; on a small machine that spinning takes the
    # CPU the HTTP and image-decoding work beside them needs.
    ort_spinning: bool = Field(False, description="let ONNX Runtime's pool threads busy-wait between runs")

    # Model loading
    preload_aliases: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["production"], description="aliases whose versions load and warm at start, "
        "before /readyz says ready (`*`: all); other versions load on first use")
    alias_poll_interval_s: float = Field(1.0, gt=0, description="how soon every API process follows an alias "
                                         "moved by another process")
    load_wait_s: float = Field(10.0, ge=0, description="a request for a version still loading waits this long, "
                               "then gets 503 with Retry-After")
    model_memory_budget_mb: float = Field(4096, ge=0, description="loaded versions no alias points at are "
                                          "unloaded, least recently used first, past this (0: no budget); the "
                                          "host's, shared equally among its DLSERVE_WORKERS processes")
    max_image_pixels: int = Field(40_000_000, ge=1, description="an image declaring more pixels is refused (413) "
                                  "before it is decoded")

    # Dynamic batching defaults (a model version may override them in metadata.batching)
    max_batch_size: int = Field(32, ge=1, description="the most requests run as one batch")
    max_queue_delay_ms: float = Field(2.0, ge=0, description="the longest a request waits for others to batch "
                                      "with (or DLSERVE_BATCH_WAIT_FRACTION of the last batch's run time, if "
                                      "longer); only when the batches of the last second had company (a lone "
                                      "request runs at once); 0: never waits")
    batch_wait_fraction: float = Field(0.2, ge=0, le=1, description="for a slow model, the wait for the company "
                                       "the batcher expects may last this fraction of the version's last batch's "
                                       "run time: a caller that misses a long batch waits for all of it and then "
                                       "its own")
    max_queue_size: int = Field(256, ge=1, description="requests queued per version; beyond, 429 with "
                                "Retry-After")
    request_timeout_ms: int = Field(10_000, ge=1, description="a request still queued this long is answered 504 "
                                    "and never run (per request: `timeout_ms`)")
    max_request_timeout_ms: int = Field(60_000, ge=1, description="the longest `timeout_ms` a request may ask for")
    max_inputs_per_request: int = Field(256, ge=1, description="the most `inputs` in one predict request")
    inline_preprocess_bytes: int = Field(64 * 1024, ge=0, description="predict bodies up to this size are "
                                         "decoded on the event loop, larger ones in a thread")
    inline_run_us: int = Field(200, ge=0, le=10_000, description="a batch whose version ran its recent batches "
                               "in at most this many microseconds runs on the event loop: handing it to the "
                               "batch thread and back would cost more (0: always the batch thread)")

    # HTTP server (`dlserve serve` and `make run`; --host/--port override)
    host: str = Field("127.0.0.1", description="the address `dlserve serve` listens on (`0.0.0.0`: every "
                      "interface)")
    port: int = Field(8000, ge=1, le=65535, description="the port `dlserve serve` listens on")
    workers: int = Field(1, ge=1, le=256, description="API processes on this host (`dlserve serve --workers` "
                         "sets it for them): they share the model memory budget, and /metrics adds up their "
                         "counts (Prometheus multiprocess files under DLSERVE_HOME/metrics)")
    # Slow clients: whole-request deadlines, not idle timers (a byte every few seconds would reset those).
    header_timeout_s: float = Field(10.0, gt=0, description="a request's line and headers must arrive within "
                                    "this long of the connection or the previous answer (else 408, closed)")
    body_timeout_s: float = Field(15.0, gt=0, description="a request's body must arrive within this long, plus "
                                  "1 s per DLSERVE_BODY_MIN_RATE_BYTES_S received (else 408, closed)")
    body_min_rate_bytes_s: int = Field(32 * 1024, ge=1, description="the slowest upload rate that is never cut "
                                       "off (bytes per second)")
    max_connections: int = Field(1024, ge=1, description="open connections per API process; more are answered "
                                 "503 with Retry-After")
    shutdown_timeout_s: float = Field(30.0, gt=0, description="on SIGTERM, requests in flight get this long to "
                                      "finish before the process exits")
    metrics_public: bool = Field(False, description="true: /metrics needs no key (for a Prometheus scraper on a "
                                 "private network)")

    # Auth
    admin_key: str | None = Field(None, description="accepted as an admin key when set (compose, automation)")
    auth_enabled: bool = Field(True, description="false: no API key is asked for (a private test setup only)")
    session_lifetime_s: int = Field(12 * 3600, ge=60, le=30 * 24 * 3600, description="how long a browser "
                                    "sign-in (`POST /v1/session`, the dashboard's cookie) lasts; never past its "
                                    "key's own expiry")
    signin_failures_per_minute: int = Field(10, ge=1, description="failed sign-ins (`POST /v1/session`) allowed "
                                            "per client address and minute; beyond, 429 with Retry-After")

    # Limits
    max_request_bytes: int = Field(32 * 1024 * 1024, ge=1024, description="JSON bodies and anything that is not "
                                   "an upload (413 above)")
    max_upload_bytes: int = Field(2 * 1024 * 1024 * 1024, ge=1024, description="a multipart upload (a model or "
                                  "a dataset), counted on the bytes received (413 above)")
    max_model_bytes: int = Field(1024 * 1024 * 1024, ge=1024, description="one .onnx file")
    model_check_timeout_s: float = Field(120.0, gt=0, description="an uploaded model must pass its checks "
                                         "(onnx.checker, an ONNX Runtime load; in a child process) within this "
                                         "long, else 422")

    # Datasets: limits on what an uploaded archive may unpack to (zip bombs, millions of tiny files)
    dataset_max_bytes: int = Field(20 * 1024 ** 3, ge=1024, description="what a dataset upload may unpack or "
                                   "inflate to in all (413 above)")
    dataset_max_files: int = Field(1_000_000, ge=1, description="files in one dataset archive (413 above)")
    dataset_max_ratio: float = Field(200.0, ge=1, description="unpacked size over upload size, for every archive "
                                     "format (413 above: a compression bomb)")

    # Training (workers; the API reads the queue and broker settings to publish)
    device: str = Field("auto", description="training device: auto (cuda when there is one), cpu, cuda, cuda:N")
    # On a machine shared with other work, fewer threads than cores train small models many times faster
    # (no threads spinning while they wait for a core).
    train_threads: int = Field(0, ge=0, description="torch CPU threads per training run (0: one per core)")
    queue: str = Field("training", description="the Celery queue training jobs go to")
    train_soft_time_limit_s: int = Field(12 * 3600, ge=1, description="a job running longer fails with a clear "
                                         "error")
    train_time_limit_s: int = Field(12 * 3600 + 300, ge=1, description="a job running longer has its worker "
                                    "process killed")
    heartbeat_interval_s: float = Field(10.0, gt=0, description="how often a running job says it is alive")
    heartbeat_timeout_s: float = Field(60.0, gt=0, description="a running job silent this long has lost its "
                                       "worker and is queued again")
    reaper_interval_s: float = Field(30.0, ge=0, description="how often the API looks for lost jobs (0: only "
                                     "workers do)")
    max_attempts: int = Field(3, ge=1, description="deliveries of one job before it is marked failed")
    progress_interval_s: float = Field(1.0, gt=0, description="how often a worker writes progress and checks for "
                                       "a cancel")
    parity_atol: float = Field(1e-4, ge=0, description="ONNX Runtime against PyTorch on a held batch at export: "
                               "absolute tolerance (beyond it the job fails)")
    parity_rtol: float = Field(1e-3, ge=0, description="the same, relative tolerance")
    publish_retry_after_s: int = Field(10, ge=1, description="`Retry-After` when the broker cannot take a job")
    job_log_max_bytes: int = Field(1024 * 1024, ge=16 * 1024, le=256 * 1024 * 1024, description="the most of a "
                                   "job's log kept in the database (GET /v1/jobs/{id}/log): its first half and its "
                                   "last half; what falls between is dropped, and marked")
    families: str = Field("", description="extra task families, comma-separated `task=python.package` pairs (each "
                          "package declares `FAMILY`; see docs/families.md), beside the `dlserve.families` entry "
                          "points of installed distributions; a task named here is not taken from an entry point. "
                          "The API and the workers must agree")
    quantisation_tolerance: dict[str, float] = Field(
        default_factory=dict, description="the largest loss of its gate metric an int8 version may show, per "
        "task, as JSON (`{\"classification\": 0.3}`), overriding the family's own (`GET /v1/families`; "
        "docs/quantisation.md); beyond it a quantisation job registers nothing")

    # Object storage (DLSERVE_ARTIFACT_ROOT=s3://...; docs/operations.md "Object storage")
    s3_addressing_style: str = Field("auto", description="S3 bucket addressing: auto, path (`host/bucket/key`, "
                                     "what MinIO or another server by plain host name usually needs) or virtual "
                                     "(`bucket.host/key`)")
    s3_multipart_bytes: int = Field(64 * 1024 * 1024, ge=5 * 1024 * 1024, le=5 * 1024 ** 3, description="files "
                                    "above this go to the object store in parts of this size (S3 takes parts of "
                                    "5 MiB to 5 GiB)")
    cache_max_bytes: int = Field(20 * 1024 ** 3, ge=0, description="with an object store: the most this host's "
                                 "cache (DLSERVE_HOME/cache/artifacts: unpacked datasets, model versions) holds; "
                                 "entries least recently used and not in use are evicted past it")
    store_sweep_interval_s: float = Field(600.0, ge=0, description="with an object store: how often the API "
                                          "removes objects no row or running job owns and aborts stale multipart "
                                          "uploads (0: only `dlserve store sweep`)")
    store_sweep_grace_s: float = Field(3600.0, ge=60, description="the sweep leaves objects and multipart uploads "
                                       "younger than this alone (an upload whose row is not committed yet)")
    http_parser: Literal["httptools", "h11"] = Field(
        "httptools", description="the HTTP/1.1 parser of the API: httptools (C, the faster) or h11 (pure Python); "
        "both send response header names in their conventional case (Content-Type)")
    access_log: bool = Field(False, description="one log line per request (uvicorn's access log); off by "
                             "default: at thousands of requests a second it costs more CPU than a small model, "
                             "and /metrics counts every request by route and status")
    opentelemetry: bool = Field(False, description="FastAPI's native OpenTelemetry spans and metrics for every "
                                "request, sent to the process's configured providers; off, it costs nothing (on, "
                                "it looks the providers up on every request even when none is configured)")

    @field_validator("providers", "preload_aliases", mode="before")
    @classmethod
    def _split_commas(cls, v, info):
        if isinstance(v, str):
            v = [p.strip() for p in v.split(",") if p.strip()]
        return [p.lower() for p in v] if info.field_name == "providers" else v

    @field_validator("providers")
    @classmethod
    def _known_providers(cls, v: list[str]) -> list[str]:
        unknown = [p for p in v if p not in KNOWN_PROVIDERS]
        if unknown:
            raise ValueError(f"unknown provider(s) {unknown}; choose from {sorted(KNOWN_PROVIDERS)}")
        if not v:
            raise ValueError("at least one provider is needed, e.g. 'cpu'")
        return v

    @field_validator("device")
    @classmethod
    def _known_device(cls, v: str) -> str:
        if v.lower() not in ("auto", "cpu", "cuda") and not v.lower().startswith("cuda:"):
            raise ValueError("device must be auto, cpu, cuda or cuda:N")
        return v.lower()

    @field_validator("s3_addressing_style")
    @classmethod
    def _known_style(cls, v: str) -> str:
        if v not in ("auto", "path", "virtual"):
            raise ValueError("s3_addressing_style must be auto, path or virtual")
        return v

    @field_validator("artifact_root", mode="before")
    @classmethod
    def _store_uri(cls, v):
        if isinstance(v, Path):
            return str(v)
        if isinstance(v, str) and "://" in v:
            from urllib.parse import urlparse

            parts = urlparse(v)
            if parts.scheme != "s3" or not parts.netloc:
                raise ValueError("artifact_root is a folder or s3://bucket/prefix")
        return v

    @field_validator("graph_optimization")
    @classmethod
    def _known_level(cls, v: str) -> str:
        if v not in ("disable", "basic", "extended", "all"):
            raise ValueError("graph_optimization must be one of disable, basic, extended, all")
        return v

    @field_validator("quantisation_tolerance")
    @classmethod
    def _tolerances(cls, v: dict[str, float]) -> dict[str, float]:
        bad = {k: t for k, t in v.items() if not 0 <= t < float("inf")}
        if bad:
            raise ValueError(f"quantisation_tolerance must be finite and >= 0 for each task; got {bad}")
        return v

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.home / 'dlserve.db').resolve()}"

    @property
    def resolved_artifact_root(self) -> Path:
        """The local folder: the store itself, or with an object store this host's cache of it."""
        if self.artifact_remote is not None:
            return (self.home / "cache" / "artifacts").resolve()
        return Path(self.artifact_root or self.home / "artifacts").resolve()

    @property
    def artifact_remote(self) -> str | None:
        """DLSERVE_ARTIFACT_ROOT when it names an object store (s3://bucket/prefix), else None."""
        root = (self.artifact_root or "").strip()
        return root if root.startswith("s3://") else None

    @property
    def resolved_broker_url(self) -> str:
        return self.broker_url or "filesystem://"

    @property
    def metrics_dir(self) -> Path:
        """Where the API processes keep their Prometheus counts when there are several (workers > 1)."""
        return (self.home / "metrics").resolve()

    @property
    def broker_dir(self) -> Path:
        return (self.home / "broker").resolve()

    @property
    def uses_file_broker(self) -> bool:
        return self.resolved_broker_url.startswith("filesystem:")


@lru_cache
def get_settings() -> Settings:
    return Settings()

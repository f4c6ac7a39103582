"""The one settings class, read by the API, the workers, Alembic and the CLI alike (env prefix DLSERVE_)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

KNOWN_PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DLSERVE_", env_file=".env", extra="ignore")

    # Where the embedded default keeps its state (SQLite file, artifacts, broker folders, local admin key).
    home: Path = Path("var")
    database_url: str = ""  # empty: sqlite file under `home`
    broker_url: str = ""  # empty: file-system broker under `home`
    artifact_root: Path | None = None  # None: `home`/artifacts

    # ONNX Runtime
    providers: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["cpu"])  # e.g. "cuda,cpu"
    intra_op_threads: int = Field(0, ge=0)  # 0 lets ONNX Runtime choose
    inter_op_threads: int = Field(0, ge=0)
    graph_optimization: str = "all"  # disable | basic | extended | all
    # ORT's pool threads busy-wait between runs by default; on a small machine that spinning takes the
    # CPU the HTTP and image-decoding work beside them needs.
    ort_spinning: bool = False

    # Model loading
    preload_aliases: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["production"])  # "*": all
    alias_poll_interval_s: float = Field(1.0, gt=0)  # how soon every API process follows an alias move
    load_wait_s: float = Field(10.0, ge=0)  # a request for a version still loading waits this long, then 503
    model_memory_budget_mb: float = Field(4096, ge=0)  # 0: no budget; LRU versions no alias points at go first
    max_image_pixels: int = Field(40_000_000, ge=1)  # images claiming more are refused (413) before decoding

    # Dynamic batching defaults (a model version may override them in metadata.batching)
    max_batch_size: int = Field(32, ge=1)
    max_queue_delay_ms: float = Field(2.0, ge=0)
    max_queue_size: int = Field(256, ge=1)
    request_timeout_ms: int = Field(10_000, ge=1)
    max_request_timeout_ms: int = Field(60_000, ge=1)
    max_inputs_per_request: int = Field(256, ge=1)
    inline_preprocess_bytes: int = Field(64 * 1024, ge=0)  # smaller bodies are decoded on the event loop

    # HTTP server (`dlserve serve` and `make run`; --host/--port override)
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    # Slow clients: whole-request deadlines, not idle timers (a byte every few seconds would reset those).
    header_timeout_s: float = Field(10.0, gt=0)  # request line and headers, from connect or the previous answer
    body_timeout_s: float = Field(15.0, gt=0)  # the body gets this long, plus 1 s per body_min_rate_bytes_s
    body_min_rate_bytes_s: int = Field(32 * 1024, ge=1)  # so a large upload on an honest link is never cut
    max_connections: int = Field(1024, ge=1)  # more are answered 503 with Retry-After
    shutdown_timeout_s: float = Field(30.0, gt=0)  # on SIGTERM, requests in flight get this long to finish
    metrics_public: bool = False  # true: /metrics needs no key (a Prometheus scraper on a private network)

    # Auth
    admin_key: str | None = None  # accepted as an admin key when set (compose, automation)
    auth_enabled: bool = True

    # Limits
    max_request_bytes: int = Field(32 * 1024 * 1024, ge=1024)  # JSON bodies and anything not an upload
    max_upload_bytes: int = Field(2 * 1024 * 1024 * 1024, ge=1024)  # multipart uploads (models, datasets)
    max_model_bytes: int = Field(1024 * 1024 * 1024, ge=1024)

    # Datasets: limits on what an uploaded archive may unpack to (zip bombs, millions of tiny files)
    dataset_max_bytes: int = Field(20 * 1024 ** 3, ge=1024)  # total extracted size
    dataset_max_files: int = Field(1_000_000, ge=1)
    dataset_max_ratio: float = Field(200.0, ge=1)  # extracted size / compressed size

    # Training (workers; the API reads the queue and broker settings to publish)
    device: str = "auto"  # DLSERVE_DEVICE: cuda | cpu | auto (cuda when available)
    # torch's CPU threads per training run; 0: torch's default (one per core). On a machine shared with
    # other work, fewer threads than cores train small models many times faster (no threads spinning
    # while they wait for a core).
    train_threads: int = Field(0, ge=0)
    queue: str = "training"
    train_soft_time_limit_s: int = Field(12 * 3600, ge=1)  # the run fails with a clear error
    train_time_limit_s: int = Field(12 * 3600 + 300, ge=1)  # the worker process is killed
    heartbeat_interval_s: float = Field(10.0, gt=0)
    heartbeat_timeout_s: float = Field(60.0, gt=0)  # a running run silent this long has lost its worker
    reaper_interval_s: float = Field(30.0, ge=0)  # 0: the API does not look for lost runs (workers still do)
    max_attempts: int = Field(3, ge=1)  # deliveries of one run before it is marked failed
    progress_interval_s: float = Field(1.0, gt=0)  # how often a worker writes progress and checks for cancel
    parity_atol: float = Field(1e-4, ge=0)  # ONNX Runtime vs PyTorch on a held batch
    parity_rtol: float = Field(1e-3, ge=0)
    publish_retry_after_s: int = Field(10, ge=1)  # Retry-After when the broker cannot take a job

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

    @field_validator("graph_optimization")
    @classmethod
    def _known_level(cls, v: str) -> str:
        if v not in ("disable", "basic", "extended", "all"):
            raise ValueError("graph_optimization must be one of disable, basic, extended, all")
        return v

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.home / 'dlserve.db').resolve()}"

    @property
    def resolved_artifact_root(self) -> Path:
        return (self.artifact_root or self.home / "artifacts").resolve()

    @property
    def resolved_broker_url(self) -> str:
        return self.broker_url or "filesystem://"

    @property
    def broker_dir(self) -> Path:
        return (self.home / "broker").resolve()

    @property
    def uses_file_broker(self) -> bool:
        return self.resolved_broker_url.startswith("filesystem:")


@lru_cache
def get_settings() -> Settings:
    return Settings()

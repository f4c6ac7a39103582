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

    # Dynamic batching defaults (a model version may override them)
    max_batch_size: int = Field(32, ge=1)
    max_queue_delay_ms: float = Field(2.0, ge=0)
    max_queue_size: int = Field(256, ge=1)
    request_timeout_ms: int = Field(10_000, ge=1)
    max_request_timeout_ms: int = Field(60_000, ge=1)

    # Auth
    admin_key: str | None = None  # accepted as an admin key when set (compose, automation)
    auth_enabled: bool = True

    # Limits
    max_request_bytes: int = Field(32 * 1024 * 1024, ge=1024)  # JSON bodies and anything not an upload
    max_upload_bytes: int = Field(2 * 1024 * 1024 * 1024, ge=1024)  # multipart uploads (models, datasets)
    max_model_bytes: int = Field(1024 * 1024 * 1024, ge=1024)

    @field_validator("providers", mode="before")
    @classmethod
    def _split_providers(cls, v):
        if isinstance(v, str):
            v = [p.strip() for p in v.split(",") if p.strip()]
        return [p.lower() for p in v]

    @field_validator("providers")
    @classmethod
    def _known_providers(cls, v: list[str]) -> list[str]:
        unknown = [p for p in v if p not in KNOWN_PROVIDERS]
        if unknown:
            raise ValueError(f"unknown provider(s) {unknown}; choose from {sorted(KNOWN_PROVIDERS)}")
        if not v:
            raise ValueError("at least one provider is needed, e.g. 'cpu'")
        return v

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


@lru_cache
def get_settings() -> Settings:
    return Settings()

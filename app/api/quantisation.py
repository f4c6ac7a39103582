"""POST /v1/models/{name}/versions/{version}/quantize: an int8 version of a registered fp32 version (issue 20).
The answer is the job (202), as POST /v1/jobs answers: it is one, listed, watched, cancelled and retried like a
training job (app/jobs/quantisation.py). Its own route rather than a kind of body of POST /v1/jobs, because
what it starts from is a version, not a dataset and a config."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Response, status
from pydantic import BaseModel, ConfigDict, Field

from app.api.deps import SessionDep, SettingsDep, TrainKey
from app.api.job_schemas import JobOut
from app.api.jobs import BrokerDep, described
from app.api.openapi import VersionPath, problems
from app.errors import Unprocessable
from app.jobs import quantisation

router = APIRouter(prefix="/v1/models", tags=["registry"])
MAX_BATCHES = 1000
MAX_BATCH_SIZE = 1024
MAX_ROWS = 65_536  # batches x batch_size: what calibration holds in memory at once is bounded by it


class QuantiseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    method: Literal["auto", "static", "dynamic"] = Field(
        "auto", description="auto: each method the family's gate names (GET /v1/families) is tried and measured, "
                            "and the fastest that passes the gate is kept; static: activations calibrated on "
                            "batches of the training split; dynamic: weights only, activations scaled per batch")
    calibration_batches: int = Field(16, ge=1, le=MAX_BATCHES, description="batches of the parent's training split "
                                     "that calibrate static quantisation (and time each candidate)")
    batch_size: int = Field(32, ge=1, le=MAX_BATCH_SIZE, description="rows per calibration batch; "
                            f"calibration_batches x batch_size is at most {MAX_ROWS}")
    tolerance: float | None = Field(None, ge=0, le=1e6, allow_inf_nan=False, description="a stricter gate than "
                                    "the family's: the largest loss of its metric allowed (default: the family's)")
    alias: str | None = Field(None, max_length=64, description="alias to point at the int8 version once registered")


@router.post("/{name}/versions/{version}/quantize", status_code=status.HTTP_202_ACCEPTED, response_model=JobOut,
             responses=problems(unavailable="the broker cannot take the job (nothing is recorded)"))
def quantize_version(name: str, version: VersionPath, body: QuantiseIn, _: TrainKey, session: SessionDep,
                     settings: SettingsDep, broker: BrokerDep, response: Response) -> JobOut:
    """Queues a job that makes an int8 version of this fp32 version with ONNX Runtime's quantisation, scores
    it and its parent with the family's ONNX Runtime evaluation on the held-out split, and registers it in
    the same model (metadata.quantisation: lineage and parity) only when it loses no more than the tolerance.
    422 for a family without int8 versions, an int8 or uploaded version, a method the family does not try."""
    if body.calibration_batches * body.batch_size > MAX_ROWS:
        raise Unprocessable(f"calibration_batches x batch_size is {body.calibration_batches * body.batch_size}; "
                            f"at most {MAX_ROWS} rows calibrate", field="batch_size")
    run = quantisation.create(session, settings, name=name, version=version, method=body.method,
                              calibration_batches=body.calibration_batches, batch_size=body.batch_size,
                              tolerance_override=body.tolerance, alias=body.alias)
    broker.publish(run.id)  # before the commit, as for a training job: a broker that is down records nothing
    session.commit()
    response.headers["Location"] = f"/v1/jobs/{run.id}"
    return described(session, run)

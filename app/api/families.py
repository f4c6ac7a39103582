"""GET /v1/families: what each registered task family takes and how it is configured, read from its contract
(models/contract.py) and its Config dataclass, so that forms (the dashboard's new-job page) stay true to the code."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from app.api.deps import ReadKey, SettingsDep
from app.api.openapi import Task
from app.jobs.quantisation import tolerance
from app.registry.triton import refusal
from app.settings import Settings
from models import FAMILIES, family
from models.common.config_doc import describe
from models.common.job_keys import JobKeys

router = APIRouter(prefix="/v1/families", tags=["families"])


class FormatOut(BaseModel):
    name: str = Field(description="the value of a dataset upload's `format`")
    description: str


class ConfigFieldOut(BaseModel):
    name: str = Field(description="the key in a job's `config`")
    type: str = Field(description="as the docs write it, e.g. `int or none`, `lenet | resnet`")
    kind: Literal["integer", "number", "boolean", "string", "array"] = Field(description="its JSON type")
    nullable: bool = Field(description="none (null) is a value: usually 'decided from the data'")
    default: Any = Field(description="the value when the key is left out")
    doc: str
    choices: list[Any] | None = Field(None, description="the only values it takes")
    minimum: float | None = None
    maximum: float | None = None


class BestMetric(BaseModel):
    key: str = Field(description="a key of a run's final metrics")
    goal: Literal["max", "min"] = Field(description="max: higher is better; min: lower is")


class TritonOut(BaseModel):
    exported: bool = Field(description="false: a version of this family is a 422 there (several graphs and a loop)")
    notes: str = Field(description="what the exported graph takes and gives, what stays on the client")


class QuantisationOut(BaseModel):
    metric: str = Field(description="a key of the family's ONNX Runtime evaluation, e.g. val_accuracy")
    goal: Literal["max", "min"] = Field(description="max: higher is better; min: lower is")
    tolerance: float = Field(description="the largest loss of the metric an int8 version may show (the family's, "
                                         "or DLSERVE_QUANTISATION_TOLERANCE's for its task)")
    methods: list[str] = Field(description="the ONNX Runtime methods a quantisation job with method auto tries")
    op_types: list[str] | None = Field(description="the operator types quantised (the rest stays float, e.g. box "
                                                    "decoding); none: every operator ONNX Runtime can quantise")


class FamilyOut(BaseModel):
    task: Task
    formats: list[FormatOut]
    config: list[ConfigFieldOut]
    best_metric: BestMetric | None = Field(description="the metric that ranks this family's runs")
    distributed: bool = Field(description="whether its jobs may train in several processes (`devices` > 1)")
    platform_keys: list[ConfigFieldOut] = Field(description="keys of a job's config that the platform takes, beside "
                                                "the family's own (`devices`, for a distributed family)")
    triton: TritonOut = Field(description="what GET /v1/models/{name}/versions/{v}/export?format=triton gives")
    quantisation: QuantisationOut | None = Field(None, description="how its int8 versions are judged "
                                                 "(docs/quantisation.md); none: it has none")


def family_out(task: str, settings: Settings | None = None) -> FamilyOut | None:
    contract = family(task)
    if contract is None:
        return None
    best, gate = contract.best_metric, contract.quantisation
    int8 = None if gate is None else QuantisationOut(
        metric=gate.metric, goal=gate.direction, methods=list(gate.methods),
        op_types=None if gate.op_types is None else list(gate.op_types),
        tolerance=tolerance(settings, task, gate) if settings else gate.tolerance)
    return FamilyOut(
        task=task, formats=[FormatOut(name=k, description=v) for k, v in contract.formats.items()],
        config=[ConfigFieldOut(**f) for f in describe(contract.config)],
        best_metric=BestMetric(key=best[0], goal=best[1]) if best else None, quantisation=int8,
        distributed=contract.distributed,
        platform_keys=[ConfigFieldOut(**f) for f in describe(JobKeys)
                       if contract.distributed or f["name"] != "devices"],
        triton=TritonOut(exported=refusal(task, contract.multi_file, contract.triton) is None, notes=contract.triton),
    )


@router.get("", response_model=list[FamilyOut])
def list_families(_: ReadKey, settings: SettingsDep) -> list[FamilyOut]:
    """Every registered task family: its dataset formats, its config fields (for a form: type, default, help,
    choices) and the metric that ranks its runs."""
    return [out for out in (family_out(task, settings) for task in list(FAMILIES)) if out is not None]

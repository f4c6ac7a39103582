"""A run's metric history (thinned on request) and the comparison of two to ten runs: /v1/jobs/{id}/metrics,
/v1/jobs/compare. Included before app/api/jobs.py's router, so that `compare` is not taken for a job id."""

from __future__ import annotations

from itertools import groupby
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from app.api.deps import ReadKey, SessionDep
from app.api.job_schemas import JobOut, MetricHistory, MetricOut, job_out
from app.errors import NotFound, Unprocessable
from app.jobs import service
from app.jobs.downsample import series
from app.jobs.listing import METRIC_KEY, extras_of

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
MAX_COMPARED = 10
RUN_ID = r"[A-Za-z0-9]{1,64}"
MaxPoints = Annotated[int | None, Query(ge=10, le=10_000, description=(
    "at most this many points per metric: the steps are cut into buckets and each keeps its lowest and highest "
    "value (with the first and last points); none: every point"))]


class Series(BaseModel):
    """One metric of one run, as columns (what a chart library takes)."""

    job_id: str
    key: str
    step: list[int]
    value: list[float]
    epoch: list[float | None]


class Comparison(BaseModel):
    runs: list[JobOut] = Field(description="in the order asked; each with its config and final metrics")
    config_keys: list[str] = Field(description="every config key of any of the runs")
    differing_config_keys: list[str] = Field(description="the keys whose value is not the same in every run "
                                                         "(absent counts as a value)")
    metric_keys: list[str] = Field(description="every final metric key of any of the runs")
    series: list[Series]


@router.get("/compare", response_model=Comparison)
def compare_jobs(
    _: ReadKey, session: SessionDep,
    ids: Annotated[str, Query(max_length=MAX_COMPARED * 65, pattern=rf"^{RUN_ID}(,{RUN_ID}){{1,{MAX_COMPARED - 1}}}$",
                              description=f"2 to {MAX_COMPARED} job ids, comma-separated")],
    max_points: Annotated[int, Query(ge=10, le=5_000, description="at most this many points per metric and run "
                                                                  "(thinned as in /v1/jobs/{id}/metrics)")] = 500,
) -> Comparison:
    """Two to ten runs side by side: their configs (and which keys differ), their final metrics, and every
    metric's curve, thinned in the database, for charts on shared axes."""
    wanted = ids.split(",")
    if len(set(wanted)) != len(wanted):
        raise Unprocessable("field 'ids' names a job twice", field="ids")
    found = {run.id: run for run in service.get_many(session, wanted)}
    missing = [i for i in wanted if i not in found]
    if missing:
        raise NotFound(f"no job with id {missing[0]!r}", field="ids")
    runs = [found[i] for i in wanted]
    extras = extras_of(session, runs)
    configs = [run.params or {} for run in runs]
    keys = sorted({k for c in configs for k in c})
    absent = object()
    differing = [k for k in keys if len({_canonical(c.get(k, absent)) for c in configs}) > 1]
    points = series(session, wanted, max_points, with_times=False)
    out = []
    for (job_id, key), group in groupby(points, key=lambda p: (p.run_id, p.key)):
        rows = list(group)
        out.append(Series(job_id=job_id, key=key, step=[p.step for p in rows], value=[p.value for p in rows],
                          epoch=[p.epoch for p in rows]))
    out.sort(key=lambda s: (wanted.index(s.job_id), s.key))
    return Comparison(runs=[job_out(r, extras[r.id]) for r in runs], config_keys=keys, differing_config_keys=differing,
                      metric_keys=sorted({k for r in runs for k in (r.latest_metrics or {})}), series=out)


def _canonical(value: Any) -> str:
    return repr(value) if not isinstance(value, float) or not value.is_integer() else repr(int(value))


@router.get("/{job_id}/metrics", response_model=MetricHistory)
def job_metrics(
    job_id: str, _: ReadKey, session: SessionDep,
    key: Annotated[str | None, Query(max_length=128, pattern=rf"^{METRIC_KEY}$", description="one metric")] = None,
    max_points: MaxPoints = None,
) -> MetricHistory:
    """Every recorded point of the run's metrics, ordered by key and step; with max_points, each series is
    thinned in the database (a 10,000-step run draws from a few hundred points that keep its spikes)."""
    service.get(session, job_id)
    return MetricHistory(job_id=job_id, items=[
        MetricOut(key=p.key, step=p.step, epoch=p.epoch, value=p.value, created_at=p.created_at)
        for p in series(session, [job_id], max_points, key)])

"""Metric series thinned in the database, so that a chart of a 10,000-step run (or ten of them) arrives in a
few hundred points that look like the whole: each series' steps are cut into equal buckets, and each bucket
keeps the points of its lowest and its highest value (spikes survive, unlike with averaging or every n-th
point); the first and last points are always kept. A series with no more points than asked comes whole.

Each series is two aggregate passes over the index (run_id, key, step, value, epoch), which holds all they
read: SQLite's min()/max() give the row they found (its step) with the value, PostgreSQL's DISTINCT ON does
the same. Window functions over the same rows were ten times slower on SQLite."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import BigInteger, cast, func, literal_column, null, select, text
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.orm import Session

from app.db.tables import RunMetric


@dataclass
class Point:
    run_id: str
    key: str
    step: int
    epoch: float | None
    value: float
    created_at: datetime | None


def series(session: Session, run_ids: list[str], max_points: int | None, key: str | None = None, *,
           with_times: bool = True) -> list[Point]:
    """The points of every series (run, metric key) of `run_ids`, ordered by run, key and step; at most
    `max_points` per series (None: all of them). Without `with_times`, created_at is left out (None)."""
    if not run_ids:
        return []
    columns = (RunMetric.run_id, RunMetric.key, RunMetric.step, RunMetric.epoch, RunMetric.value,
               RunMetric.created_at if with_times else null())
    if max_points is None:
        where = [RunMetric.run_id.in_(run_ids)] + ([RunMetric.key == key] if key else [])
        rows = session.execute(select(*columns).where(*where).order_by(RunMetric.run_id, RunMetric.key, RunMetric.step))
        return [Point(*row) for row in rows]
    out: list[Point] = []
    for run_id in sorted(run_ids):
        for series_key in [key] if key else _keys(session, run_id):
            points = _thinned(session, (RunMetric.run_id == run_id, RunMetric.key == series_key), max_points)
            times = _times(session, run_id, series_key, [p[0] for p in points]) if with_times and points else {}
            out.extend(Point(run_id, series_key, step, epoch, value, times.get(step)) for step, epoch, value in points)
    return out


# The run's metric keys, one index seek each (a loose index scan): DISTINCT would read every point.
_KEYS = text("WITH RECURSIVE k(key) AS (SELECT CAST(MIN(key) AS TEXT) FROM run_metrics WHERE run_id = :run "
             "UNION ALL SELECT (SELECT CAST(MIN(m.key) AS TEXT) FROM run_metrics m WHERE m.run_id = :run "
             "AND m.key > k.key) FROM k WHERE k.key IS NOT NULL) SELECT key FROM k WHERE key IS NOT NULL")
_POINT = (RunMetric.step, RunMetric.epoch, RunMetric.value)


def _keys(session: Session, run_id: str) -> list[str]:
    return list(session.scalars(_KEYS, {"run": run_id}))


def _thinned(session: Session, one: tuple, max_points: int) -> list[tuple[int, float | None, float]]:
    """(step, epoch, value) of the points a series keeps, by step."""
    first, last = (session.execute(select(*_POINT).where(*one).order_by(order).limit(1)).first()  # a seek each
                   for order in (RunMetric.step.asc(), RunMetric.step.desc()))
    if first is None:
        return []
    span = last.step - first.step + 1
    if span <= max_points:  # steps are unique in a series: it has no more points than that
        return [tuple(row) for row in session.execute(select(*_POINT).where(*one).order_by(RunMetric.step))]
    buckets = max(1, (max_points - 2) // 2)  # two points a bucket, and the two ends
    # integers computed here, written into the SQL (PostgreSQL's DISTINCT ON must see the very expression of its
    # ORDER BY); BIGINT so that step x buckets cannot overflow PostgreSQL's int4
    bucket = (cast(RunMetric.step - _int(first.step), BigInteger) * _int(buckets) // _int(span)).label("bucket")
    kept = {first.step: tuple(first), last.step: tuple(last)}
    for extreme in ("min", "max"):
        kept.update((row[0], row) for row in _extremes(session, one, bucket, extreme))
    return [kept[step] for step in sorted(kept)]


def _int(n: int):
    return literal_column(str(int(n)), BigInteger)


def _extremes(session: Session, one: tuple, bucket, extreme: str) -> list[tuple[int, float | None, float]]:
    """(step, epoch, value) of each bucket's lowest (or highest) value."""
    if session.get_bind().dialect.name == "sqlite":
        # bare columns beside a single min() or max() are taken from the row that holds it (SQLite documents this)
        value = getattr(func, extreme)(RunMetric.value)
        stmt = select(bucket, RunMetric.step, RunMetric.epoch, value).where(*one).group_by(literal_column("bucket"))
        return [(step, epoch, v) for _bucket, step, epoch, v in session.execute(stmt)]
    order = RunMetric.value.asc() if extreme == "min" else RunMetric.value.desc()
    stmt = select(*_POINT).where(*one).ext(distinct_on(bucket.element)).order_by(bucket.element, order, RunMetric.step)
    return [tuple(row) for row in session.execute(stmt)]


def _times(session: Session, run_id: str, key: str, steps: list[int]) -> dict[int, datetime]:
    stmt = select(RunMetric.step, RunMetric.created_at).where(RunMetric.run_id == run_id, RunMetric.key == key,
                                                               RunMetric.step.in_(steps))
    return {step: at for step, at in session.execute(stmt)}

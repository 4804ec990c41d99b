"""Metric points: what runs record (train loss, dev and test metrics) and the curves and
best values read back."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import func, select

from .. import db
from ..models import MetricPoint, utcnow
from .base import RegistryBase, _insert_for

_POINT_KEY = ("job_id", "step", "task", "split", "name")


@dataclass(frozen=True)
class Point:
    """One metric value to record; `task` is "" for values over all tasks (train loss)."""

    step: int
    split: str
    name: str
    value: float
    task: str = ""
    epoch: float | None = None


class MetricsMixin(RegistryBase):
    """Record and read a job's metric points."""

    @db.retry_writes()
    def add_metric_points(self, job_id: int, points: Iterable[Point]) -> int:
        """Record points; a point already there (same job, step, task, split, name) is replaced."""
        now = utcnow()
        latest = {(p.step, p.task, p.split, p.name): p for p in points}  # one row per key
        rows = [
            {
                "job_id": job_id,
                "step": p.step,
                "task": p.task,
                "split": p.split,
                "name": p.name,
                "value": float(p.value),
                "epoch": p.epoch,
                "created_at": now,
            }
            for p in latest.values()
        ]
        if not rows:
            return 0
        with self._tx() as s:
            insert = _insert_for(s)
            for start in range(0, len(rows), 500):
                stmt = insert(MetricPoint).values(rows[start : start + 500])
                stmt = stmt.on_conflict_do_update(
                    index_elements=list(_POINT_KEY),
                    set_={
                        "value": stmt.excluded.value,
                        "epoch": stmt.excluded.epoch,
                        "created_at": stmt.excluded.created_at,
                    },
                )
                s.execute(stmt)
        return len(rows)

    def metric_series(
        self,
        job_id: int,
        *,
        split: str | None = None,
        name: str | None = None,
        task: str | None = None,
    ) -> dict[tuple[str, str, str], list[tuple[int, float]]]:
        """Curves of a job for plots: (task, split, name) -> [(step, value)] by step."""
        query = (
            select(
                MetricPoint.task,
                MetricPoint.split,
                MetricPoint.name,
                MetricPoint.step,
                MetricPoint.value,
            )
            .where(MetricPoint.job_id == job_id)
            .order_by(MetricPoint.step)
        )
        for column, value in (
            (MetricPoint.split, split),
            (MetricPoint.name, name),
            (MetricPoint.task, task),
        ):
            if value is not None:
                query = query.where(column == value)
        series: dict[tuple[str, str, str], list[tuple[int, float]]] = {}
        with self._sessions() as s:
            for t, sp, n, step, value in s.execute(query):
                series.setdefault((t, sp, n), []).append((step, value))
        return series

    def best_dev_metrics(self, job_ids: Iterable[int]) -> dict[int, float]:
        """Each job's best mean-over-tasks dev 'main' metric across its evaluations, in one
        query for a whole job list (jobs without a dev evaluation are left out)."""
        ids = list(job_ids)
        if not ids:
            return {}
        per_step = (
            select(MetricPoint.job_id, func.avg(MetricPoint.value).label("mean"))
            .where(
                MetricPoint.job_id.in_(ids), MetricPoint.split == "dev", MetricPoint.name == "main"
            )
            .group_by(MetricPoint.job_id, MetricPoint.step)
            .subquery()
        )
        query = select(per_step.c.job_id, func.max(per_step.c.mean)).group_by(per_step.c.job_id)
        with self._sessions() as s:
            return {int(job_id): float(best) for job_id, best in s.execute(query)}

    def count_metric_points(self, job_id: int) -> int:
        with self._sessions() as s:
            return int(s.scalar(select(func.count()).where(MetricPoint.job_id == job_id)) or 0)

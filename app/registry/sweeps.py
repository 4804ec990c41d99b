"""Sweeps: one job per combination of a grid, recorded together."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from ..models import Job, MaskSet, Prototype, Sweep
from ..sweeps import SweepSpec
from .base import InvalidStateError, NotFoundError
from .jobs import JobsMixin


class SweepsMixin(JobsMixin):
    """Create and read sweeps."""

    def create_sweep(self, spec: SweepSpec | dict[str, Any]) -> int:
        """Record a sweep and all its jobs in one transaction, then enqueue each job.

        Every combination was validated by `SweepSpec`; a job the broker refuses is marked
        failed (the others still run) and the first such error is raised after the rest.
        """
        if not isinstance(spec, SweepSpec):
            spec = SweepSpec.model_validate(spec, context={"paths": True})
        if spec.base.base_prototype or spec.base.replace_tasks:
            raise InvalidStateError(
                "a sweep cannot add tasks onto a prototype (base_prototype);"
                " submit one add-job per setting instead"
            )
        base = spec.base.model_copy(update={"owner": spec.owner})  # as its jobs are
        with self._tx() as s:
            sweep = Sweep(
                name=spec.name, owner=spec.owner, base_spec=base.to_json_dict(), grid=spec.grid
            )
            s.add(sweep)
            s.flush()
            jobs = [
                self._add_job(s, job.model_copy(update={"owner": spec.owner}), sweep.id)
                for job in spec.jobs()
            ]
            sweep_id = sweep.id
        failure: Exception | None = None
        for job in jobs:
            try:
                self._send(job.id, job.queue, job.celery_task_id or "")
            except Exception as err:
                failure = failure or err
        if failure is not None:
            raise failure
        return sweep_id

    def get_sweep(self, sweep_id: int) -> Sweep:
        """A sweep with its jobs, their prototypes and each task's mask set."""
        query = (
            select(Sweep)
            .where(Sweep.id == sweep_id)
            .options(
                selectinload(Sweep.jobs)
                .selectinload(Job.prototype)
                .selectinload(Prototype.mask_sets)
                .selectinload(MaskSet.task)
            )
        )
        with self._sessions() as s:
            sweep = s.scalar(query)
            if sweep is None:
                raise NotFoundError(f"no sweep {sweep_id}")
            return sweep

    def list_sweeps(self, *, owner: str | None = None, limit: int = 100) -> list[Sweep]:
        """Newest first, each with its jobs (for their statuses)."""
        query = (
            select(Sweep).options(selectinload(Sweep.jobs)).order_by(Sweep.id.desc()).limit(limit)
        )
        if owner:
            query = query.where(Sweep.owner == owner)
        with self._sessions() as s:
            return list(s.scalars(query))

"""Jobs: submit, read, annotate, cancel, retry and fail them; the job-row helpers (row lock,
attempt fence, re-queue) the worker side, the reaper and sweeps build on."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import and_, select, update
from sqlalchemy.orm import Session, selectinload

from .. import db
from ..models import FINAL_STATUSES, Job, JobStatus, utcnow
from ..specs import JobSpec
from ..uploads import task_name
from .base import InvalidStateError, NotFoundError, RegistryBase


class JobsMixin(RegistryBase):
    """Jobs and their state outside a worker's run."""

    # --- submit and manage jobs ---------------------------------------------------------

    def submit_job(
        self, spec: JobSpec | dict[str, Any], replace_option: str = "replace_tasks"
    ) -> int:
        """Validate, record and enqueue a job; returns its id. `replace_option`: the name
        the caller's request gives `replace_tasks` (named in a refusal)."""
        if not isinstance(spec, JobSpec):
            spec = JobSpec.model_validate(spec, context={"paths": True})  # a Python caller
        from ..prototype_tasks import rebase_spec

        spec = rebase_spec(self, spec, replace_option)  # adding tasks onto a prototype
        with self._tx() as s:
            job = self._add_job(s, spec)
        self._send(job.id, job.queue, job.celery_task_id or "")
        return job.id

    def _add_job(self, s: Session, spec: JobSpec, sweep_id: int | None = None) -> Job:
        tasks = "+".join(task_name(t) for t in spec.config.tasks)
        job = Job(
            name=spec.name or f"{tasks} on {spec.config.backbone}",
            owner=spec.owner,
            sweep_id=sweep_id,
            spec=spec.to_json_dict(),
            queue=spec.queue or self.settings.default_queue,
            celery_task_id=str(uuid.uuid4()),
            status=JobStatus.queued.value,
        )
        s.add(job)
        s.flush()
        job.run_dir = str(self.run_dir_for(job.id))
        return job

    def _send(self, job_id: int, queue: str, task_id: str) -> None:
        try:
            self._enqueue(job_id, queue, task_id)
        except Exception as err:
            self.fail_job(job_id, f"could not enqueue: {err.__class__.__name__}: {err}")
            raise

    def run_dir_for(self, job_id: int) -> Path:
        assert self.settings.runs_dir is not None
        return self.settings.runs_dir / f"job-{job_id}"

    def get_job(self, job_id: int) -> Job:
        with self._sessions() as s:
            job = s.get(Job, job_id, options=[selectinload(Job.prototype)])
            if job is None:
                raise NotFoundError(f"no job {job_id}")
            return job

    def list_jobs(
        self,
        *,
        status: str | None = None,
        owner: str | None = None,
        sweep_id: int | None = None,
        limit: int = 100,
    ) -> list[Job]:
        """Newest first."""
        query = select(Job).order_by(Job.id.desc()).limit(limit)
        if status:
            query = query.where(Job.status == status)
        if owner:
            query = query.where(Job.owner == owner)
        if sweep_id is not None:
            query = query.where(Job.sweep_id == sweep_id)
        with self._sessions() as s:
            return list(s.scalars(query))

    def annotate_job(
        self, job_id: int, *, tags: list[str] | None = None, note: str | None = None
    ) -> Job:
        """Set a job's tags (trimmed, unique, in order) and / or its note."""
        with self._tx() as s:
            job = s.get(Job, job_id)
            if job is None:
                raise NotFoundError(f"no job {job_id}")
            if tags is not None:
                clean: list[str] = []
                for tag in tags:
                    tag = str(tag).strip()[:40]
                    if tag and tag not in clean:
                        clean.append(tag)
                job.tags = clean[:20]
            if note is not None:
                job.note = str(note)[:5000]
            return job

    def request_cancel(self, job_id: int) -> Job:
        """Cancel a queued job now; ask a running one to checkpoint and stop."""
        with self._tx() as s:
            job = self._lock_job(s, job_id)
            if job.status == JobStatus.queued.value:
                job.status = JobStatus.cancelled.value
                job.finished_at = utcnow()
            elif job.status == JobStatus.running.value:
                job.cancel_requested = True
            else:
                raise InvalidStateError(f"job {job_id} is already {job.status}")
            return job

    def cancel_requested(self, job_id: int) -> bool:
        with self._sessions() as s:
            return bool(s.scalar(select(Job.cancel_requested).where(Job.id == job_id)))

    def retry(self, job_id: int) -> Job:
        """Queue a failed or cancelled job again; it resumes from its last checkpoint."""
        task_id = str(uuid.uuid4())
        with self._tx() as s:
            job = self._lock_job(s, job_id)
            if job.status not in (JobStatus.failed.value, JobStatus.cancelled.value):
                raise InvalidStateError(
                    f"job {job_id} is {job.status}; only failed or cancelled jobs can be retried"
                )
            self._requeue(job, task_id)
            queue = job.queue
        self._send(job_id, queue, task_id)
        return self.get_job(job_id)

    @staticmethod
    def _requeue(job: Job, task_id: str) -> None:
        job.status = JobStatus.queued.value
        job.cancel_requested = False
        job.error = None
        job.finished_at = None
        job.heartbeat_at = utcnow()  # for a queued job: when it was last sent
        job.celery_task_id = task_id

    @staticmethod
    def _lock_job(s: Session, job_id: int) -> Job:
        job = s.scalar(select(Job).where(Job.id == job_id).with_for_update())
        if job is None:
            raise NotFoundError(f"no job {job_id}")
        return job

    def _fenced(self, job_id: int, attempt: int) -> Any:
        return and_(
            Job.id == job_id, Job.attempts == attempt, Job.status == JobStatus.running.value
        )

    @db.retry_writes()
    def fail_job(self, job_id: int, message: str, attempt: int | None = None) -> bool:
        """Mark a job failed with `message` (only the run holding `attempt`, when given)."""
        where = (
            self._fenced(job_id, attempt)
            if attempt is not None
            else and_(Job.id == job_id, Job.status.not_in(FINAL_STATUSES))
        )
        with self._tx() as s:
            done = s.execute(
                update(Job)
                .where(where)
                .values(status=JobStatus.failed.value, error=message[-8000:], finished_at=utcnow())
            )
            return done.rowcount == 1  # type: ignore[attr-defined]

    def job_owners(self, job_ids: Iterable[int | None]) -> dict[int, str]:
        """job id -> owner, for the given ids (one query; missing ids are left out)."""
        ids = {i for i in job_ids if i is not None}
        if not ids:
            return {}
        with self._sessions() as s:
            return dict(s.execute(select(Job.id, Job.owner).where(Job.id.in_(ids))).all())

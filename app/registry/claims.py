"""The worker side of a job: claim it, heartbeat, report progress, and end the run
(succeeded with its prototype, succeeded without one, cancelled). Every write is fenced by the
attempt number `claim_job` hands out."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from sqlalchemy import and_, or_, select, update

from .. import db
from ..models import Backbone, Job, JobStatus, MaskSet, Prototype, Task, utcnow
from ..specs import JobSpec
from .catalog import CatalogMixin
from .jobs import JobsMixin

Signal = Literal["ok", "cancel", "lost"]


@dataclass
class TaskOutcome:
    """What a finished job produced for one task (its masks and head)."""

    info: dict[str, Any]
    artifact_path: str
    mask_bits: int = 0
    mask_bytes: int = 0
    density: list[float] = field(default_factory=list)
    dev_metrics: dict[str, float] = field(default_factory=dict)
    test_metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class RunOutcome:
    """What a finished job produced: the prototype and one `TaskOutcome` per task."""

    artifact_path: str
    storage: dict[str, Any]
    tasks: dict[str, TaskOutcome]
    steps: int = 0
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass(frozen=True)
class Claim:
    """A worker's right to run a job: the spec and the attempt number that fences writes."""

    job_id: int
    attempt: int
    spec: JobSpec
    run_dir: str


class ClaimsMixin(JobsMixin, CatalogMixin):
    """A worker's run of a claimed job."""

    # --- worker side: claim, heartbeat, progress ----------------------------------------

    @db.retry_writes()
    def claim_job(self, job_id: int, *, host: str, task_id: str | None = None) -> Claim | None:
        """Take a queued job, or a running one whose worker stopped heartbeating.

        Returns None (skip the delivery) when the job is finished, cancelled or alive
        elsewhere: a job is run by one worker at a time and succeeds exactly once.
        """
        now = utcnow()
        stale = now - timedelta(seconds=self.settings.reaper_timeout)
        runnable = or_(
            Job.status == JobStatus.queued.value,
            and_(
                Job.status == JobStatus.running.value,
                or_(Job.heartbeat_at.is_(None), Job.heartbeat_at < stale),
            ),
        )
        values: dict[str, Any] = {
            "status": JobStatus.running.value,
            "attempts": Job.attempts + 1,
            "worker_host": host,
            "heartbeat_at": now,
            "error": None,
        }
        if task_id:
            values["celery_task_id"] = task_id
        with self._tx() as s:
            claimed = s.execute(
                update(Job)
                .where(Job.id == job_id, runnable)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                return None
            job = s.get(Job, job_id, populate_existing=True)
            assert job is not None
            if job.started_at is None:
                job.started_at = now
            run_dir = job.run_dir or str(self.run_dir_for(job_id))
            job.run_dir = run_dir
            spec = JobSpec.from_stored(job.spec)
            return Claim(job_id=job_id, attempt=job.attempts, spec=spec, run_dir=run_dir)

    @db.retry_writes()
    def heartbeat(self, job_id: int, attempt: int) -> Signal:
        """Record that the run is alive; tells it to go on, to cancel, or that it lost the job."""
        with self._tx() as s:
            done = s.execute(
                update(Job)
                .where(self._fenced(job_id, attempt))
                .values(heartbeat_at=utcnow())
                .returning(Job.cancel_requested)
            ).first()
        if done is None:
            return "lost"
        return "cancel" if done[0] else "ok"

    @db.retry_writes()
    def report_progress(
        self,
        job_id: int,
        attempt: int,
        *,
        step: int,
        total_steps: int | None,
        phase: str | None = None,
        eta_seconds: float | None = None,
        samples_per_second: float | None = None,
    ) -> None:
        progress = min(1.0, max(0.0, step / total_steps)) if total_steps else 0.0
        with self._tx() as s:
            s.execute(
                update(Job)
                .where(self._fenced(job_id, attempt))
                .values(
                    step=step,
                    total_steps=total_steps,
                    progress=progress,
                    phase=phase,
                    eta_seconds=eta_seconds,
                    samples_per_second=samples_per_second,
                    heartbeat_at=utcnow(),
                )
            )

    # --- worker side: endings ------------------------------------------------------------

    @db.retry_writes()
    def finish_job(self, job_id: int, attempt: int, outcome: RunOutcome) -> str | None:
        """Mark the job succeeded and register its prototype, tasks and mask sets atomically.

        Returns the prototype uid, or None when this attempt no longer owns the job
        (nothing is written then).
        """
        with self._sessions() as s:
            stored = s.scalar(select(Job.spec).where(self._fenced(job_id, attempt)))
        if stored is None:
            return None
        config = JobSpec.from_stored(stored).config
        self._ensure_names(Backbone, [config.backbone])
        self._ensure_names(Task, list(outcome.tasks))
        with self._tx() as s:
            job = s.scalar(select(Job).where(self._fenced(job_id, attempt)).with_for_update())
            if job is None:
                return None
            backbone = self._backbone(s, config.backbone, outcome.storage)
            proto = Prototype(
                uid=outcome.uid,
                backbone=backbone,
                job_id=job.id,
                petl_kind=config.propetl.petl,
                sharing=config.propetl.sharing,
                config=config.propetl.to_dict(),
                train_config=config.to_dict(),
                prototype_params=int(outcome.storage.get("prototype_params", 0)),
                backbone_params=outcome.storage.get("backbone_params"),
                storage=outcome.storage,
                artifact_path=outcome.artifact_path,
            )
            s.add(proto)
            for position, (name, result) in enumerate(outcome.tasks.items()):
                proto.mask_sets.append(
                    MaskSet(
                        task=self._task(s, name, result.info),
                        artifact_path=result.artifact_path,
                        job_id=job.id,
                        position=position,
                        keep_ratio=config.propetl.keep_ratio if config.propetl.masked else None,
                        mask_bits=result.mask_bits,
                        mask_bytes=result.mask_bytes,
                        density=list(result.density),
                        dev_metrics=result.dev_metrics,
                        test_metrics=result.test_metrics,
                        task_info=dict(result.info),
                    )
                )
            job.mark_succeeded(outcome.steps)
        return outcome.uid

    @db.retry_writes()
    def finish_without_prototype(self, job_id: int, attempt: int, *, step: int) -> bool:
        """Mark a job that produces a file, not a prototype (a labelling job), succeeded."""
        values: dict[str, Any] = {
            "status": JobStatus.succeeded.value,
            "finished_at": utcnow(),
            "progress": 1.0,
            "step": step,
            "phase": "done",
            "eta_seconds": 0.0,
            "error": None,
        }
        with self._tx() as s:
            done = s.execute(update(Job).where(self._fenced(job_id, attempt)).values(**values))
            return done.rowcount == 1  # type: ignore[attr-defined]

    @db.retry_writes()
    def mark_cancelled(self, job_id: int, attempt: int, *, step: int | None = None) -> bool:
        """End a run that stopped on request; its checkpoint stays in the run dir."""
        values: dict[str, Any] = {
            "status": JobStatus.cancelled.value,
            "finished_at": utcnow(),
            "cancel_requested": False,
        }
        if step is not None:
            values["step"] = step
        with self._tx() as s:
            done = s.execute(update(Job).where(self._fenced(job_id, attempt)).values(**values))
            return done.rowcount == 1  # type: ignore[attr-defined]

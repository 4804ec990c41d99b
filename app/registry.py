"""The registry's service layer: every read and write of jobs, results and metrics.

Nothing else opens a database session. Workers call the `claim / heartbeat / report /
finish / fail` operations, fenced by the attempt number `claim_job` hands out, so a worker
that was presumed dead cannot overwrite the run that replaced it.
"""

from __future__ import annotations

import logging
import shutil
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.orm import Session, selectinload

from . import db
from .models import (
    FINAL_STATUSES,
    Backbone,
    Job,
    JobStatus,
    MaskSet,
    MetricPoint,
    Prototype,
    Sweep,
    Task,
    utcnow,
)
from .settings import Settings, get_settings
from .specs import JobSpec
from .sweeps import SweepSpec
from .uploads import task_name

log = logging.getLogger(__name__)

Enqueue = Callable[[int, str, str], None]
Signal = Literal["ok", "cancel", "lost"]
_POINT_KEY = ("job_id", "step", "task", "split", "name")


class NotFoundError(LookupError):
    """No row with that id."""


class InvalidStateError(ValueError):
    """The operation does not apply to the job's current status."""


@dataclass(frozen=True)
class Point:
    """One metric value to record; `task` is "" for values over all tasks (train loss)."""

    step: int
    split: str
    name: str
    value: float
    task: str = ""
    epoch: float | None = None


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


def _default_enqueue(job_id: int, queue: str, task_id: str) -> None:
    from .queue import enqueue_job

    enqueue_job(job_id, queue, task_id)


def _insert_for(session: Session) -> Any:
    name = session.get_bind().dialect.name
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        raise NotImplementedError(f"no upsert for {name}")
    return insert


class Registry:
    """Operations on the registry database at `url` (default: the settings' database)."""

    def __init__(self, url: str | None = None, *, settings: Settings | None = None,
                 enqueue: Enqueue | None = None, migrate: bool = False) -> None:
        self.settings = settings or get_settings()
        self.url = url or self.settings.database_url
        self.engine = db.get_engine(self.url)
        self._sessions = db.session_factory(self.engine)
        self._enqueue = enqueue or _default_enqueue
        if migrate:
            db.upgrade(self.url)

    def _tx(self) -> Any:
        return db.transaction(self._sessions)

    def ping(self) -> None:
        """Raise when the database does not answer (a health check's one query)."""
        with self._tx() as s:
            s.execute(select(1))

    # --- submit and manage jobs ---------------------------------------------------------

    def submit_job(self, spec: JobSpec | dict[str, Any]) -> int:
        """Validate, record and enqueue a job; returns its id."""
        if not isinstance(spec, JobSpec):
            spec = JobSpec.model_validate(spec, context={"paths": True})  # a Python caller
        from .prototype_tasks import rebase_spec

        spec = rebase_spec(self, spec)  # a job adding tasks onto a prototype: its config
        with self._tx() as s:
            job = self._add_job(s, spec)
        self._send(job.id, job.queue, job.celery_task_id or "")
        return job.id

    def _add_job(self, s: Session, spec: JobSpec, sweep_id: int | None = None) -> Job:
        tasks = "+".join(task_name(t) for t in spec.config.tasks)
        job = Job(name=spec.name or f"{tasks} on {spec.config.backbone}",
                  owner=spec.owner, sweep_id=sweep_id, spec=spec.to_json_dict(),
                  queue=spec.queue or self.settings.default_queue,
                  celery_task_id=str(uuid.uuid4()), status=JobStatus.queued.value)
        s.add(job)
        s.flush()
        job.run_dir = str(self.run_dir_for(job.id))
        return job

    # --- sweeps ----------------------------------------------------------------------------

    def create_sweep(self, spec: SweepSpec | dict[str, Any]) -> int:
        """Record a sweep and all its jobs in one transaction, then enqueue each job.

        Every combination was validated by `SweepSpec`; a job the broker refuses is marked
        failed (the others still run) and the first such error is raised after the rest.
        """
        if not isinstance(spec, SweepSpec):
            spec = SweepSpec.model_validate(spec, context={"paths": True})
        if spec.base.base_prototype or spec.base.replace_tasks:
            raise InvalidStateError("a sweep cannot add tasks onto a prototype (base_prototype);"
                                    " submit one add-job per setting instead")
        with self._tx() as s:
            sweep = Sweep(name=spec.name, owner=spec.owner, base_spec=spec.base.to_json_dict(),
                          grid=spec.grid)
            s.add(sweep)
            s.flush()
            jobs = [self._add_job(s, job.model_copy(update={"owner": spec.owner}), sweep.id)
                    for job in spec.jobs()]
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
        query = (select(Sweep).where(Sweep.id == sweep_id).options(
            selectinload(Sweep.jobs).selectinload(Job.prototype)
            .selectinload(Prototype.mask_sets).selectinload(MaskSet.task)))
        with self._sessions() as s:
            sweep = s.scalar(query)
            if sweep is None:
                raise NotFoundError(f"no sweep {sweep_id}")
            return sweep

    def list_sweeps(self, *, owner: str | None = None, limit: int = 100) -> list[Sweep]:
        """Newest first, each with its jobs (for their statuses)."""
        query = (select(Sweep).options(selectinload(Sweep.jobs))
                 .order_by(Sweep.id.desc()).limit(limit))
        if owner:
            query = query.where(Sweep.owner == owner)
        with self._sessions() as s:
            return list(s.scalars(query))

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

    def list_jobs(self, *, status: str | None = None, owner: str | None = None,
                  sweep_id: int | None = None, limit: int = 100) -> list[Job]:
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

    def annotate_job(self, job_id: int, *, tags: list[str] | None = None,
                     note: str | None = None) -> Job:
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
                raise InvalidStateError(f"job {job_id} is {job.status}; only failed or "
                                        "cancelled jobs can be retried")
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

    # --- worker side: claim, heartbeat, progress, metrics --------------------------------

    @db.retry_writes()
    def claim_job(self, job_id: int, *, host: str, task_id: str | None = None) -> Claim | None:
        """Take a queued job, or a running one whose worker stopped heartbeating.

        Returns None (skip the delivery) when the job is finished, cancelled or alive
        elsewhere: a job is run by one worker at a time and succeeds exactly once.
        """
        now = utcnow()
        stale = now - timedelta(seconds=self.settings.reaper_timeout)
        runnable = or_(Job.status == JobStatus.queued.value,
                       and_(Job.status == JobStatus.running.value,
                            or_(Job.heartbeat_at.is_(None), Job.heartbeat_at < stale)))
        values: dict[str, Any] = {"status": JobStatus.running.value, "attempts": Job.attempts + 1,
                                  "worker_host": host, "heartbeat_at": now, "error": None}
        if task_id:
            values["celery_task_id"] = task_id
        with self._tx() as s:
            claimed = s.execute(update(Job).where(Job.id == job_id, runnable).values(**values)
                                .execution_options(synchronize_session=False))
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

    def _fenced(self, job_id: int, attempt: int) -> Any:
        return and_(Job.id == job_id, Job.attempts == attempt,
                    Job.status == JobStatus.running.value)

    @db.retry_writes()
    def heartbeat(self, job_id: int, attempt: int) -> Signal:
        """Record that the run is alive; tells it to go on, to cancel, or that it lost the job."""
        with self._tx() as s:
            done = s.execute(update(Job).where(self._fenced(job_id, attempt))
                             .values(heartbeat_at=utcnow())
                             .returning(Job.cancel_requested)).first()
        if done is None:
            return "lost"
        return "cancel" if done[0] else "ok"

    @db.retry_writes()
    def report_progress(self, job_id: int, attempt: int, *, step: int, total_steps: int | None,
                        phase: str | None = None, eta_seconds: float | None = None,
                        samples_per_second: float | None = None) -> None:
        progress = min(1.0, max(0.0, step / total_steps)) if total_steps else 0.0
        with self._tx() as s:
            s.execute(update(Job).where(self._fenced(job_id, attempt)).values(
                step=step, total_steps=total_steps, progress=progress, phase=phase,
                eta_seconds=eta_seconds, samples_per_second=samples_per_second,
                heartbeat_at=utcnow()))

    @db.retry_writes()
    def add_metric_points(self, job_id: int, points: Iterable[Point]) -> int:
        """Record points; a point already there (same job, step, task, split, name) is replaced."""
        now = utcnow()
        latest = {(p.step, p.task, p.split, p.name): p for p in points}  # one row per key
        rows = [{"job_id": job_id, "step": p.step, "task": p.task, "split": p.split,
                 "name": p.name, "value": float(p.value), "epoch": p.epoch, "created_at": now}
                for p in latest.values()]
        if not rows:
            return 0
        with self._tx() as s:
            insert = _insert_for(s)
            for start in range(0, len(rows), 500):
                stmt = insert(MetricPoint).values(rows[start:start + 500])
                stmt = stmt.on_conflict_do_update(
                    index_elements=list(_POINT_KEY),
                    set_={"value": stmt.excluded.value, "epoch": stmt.excluded.epoch,
                          "created_at": stmt.excluded.created_at})
                s.execute(stmt)
        return len(rows)

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
                uid=outcome.uid, backbone=backbone, job_id=job.id, petl_kind=config.propetl.petl,
                sharing=config.propetl.sharing, config=config.propetl.to_dict(),
                train_config=config.to_dict(),
                prototype_params=int(outcome.storage.get("prototype_params", 0)),
                backbone_params=outcome.storage.get("backbone_params"),
                storage=outcome.storage, artifact_path=outcome.artifact_path)
            s.add(proto)
            for position, (name, result) in enumerate(outcome.tasks.items()):
                proto.mask_sets.append(MaskSet(
                    task=self._task(s, name, result.info), artifact_path=result.artifact_path,
                    job_id=job.id, position=position,
                    keep_ratio=config.propetl.keep_ratio if config.propetl.masked else None,
                    mask_bits=result.mask_bits, mask_bytes=result.mask_bytes,
                    density=list(result.density), dev_metrics=result.dev_metrics,
                    test_metrics=result.test_metrics))
            job.mark_succeeded(outcome.steps)
        return outcome.uid

    @db.retry_writes()
    def finish_without_prototype(self, job_id: int, attempt: int, *, step: int) -> bool:
        """Mark a job that produces a file, not a prototype (a labelling job), succeeded."""
        values: dict[str, Any] = {"status": JobStatus.succeeded.value, "finished_at": utcnow(),
                                  "progress": 1.0, "step": step, "phase": "done",
                                  "eta_seconds": 0.0, "error": None}
        with self._tx() as s:
            done = s.execute(update(Job).where(self._fenced(job_id, attempt)).values(**values))
            return done.rowcount == 1  # type: ignore[attr-defined]

    @db.retry_writes()
    def mark_cancelled(self, job_id: int, attempt: int, *, step: int | None = None) -> bool:
        """End a run that stopped on request; its checkpoint stays in the run dir."""
        values: dict[str, Any] = {"status": JobStatus.cancelled.value, "finished_at": utcnow(),
                                  "cancel_requested": False}
        if step is not None:
            values["step"] = step
        with self._tx() as s:
            done = s.execute(update(Job).where(self._fenced(job_id, attempt)).values(**values))
            return done.rowcount == 1  # type: ignore[attr-defined]

    @db.retry_writes()
    def fail_job(self, job_id: int, message: str, attempt: int | None = None) -> bool:
        """Mark a job failed with `message` (only the run holding `attempt`, when given)."""
        where = (self._fenced(job_id, attempt) if attempt is not None
                 else and_(Job.id == job_id, Job.status.not_in(FINAL_STATUSES)))
        with self._tx() as s:
            done = s.execute(update(Job).where(where).values(
                status=JobStatus.failed.value, error=message[-8000:], finished_at=utcnow()))
            return done.rowcount == 1  # type: ignore[attr-defined]

    def reap_stale_jobs(self, timeout: float | None = None,
                        active: Callable[[], set[str] | None] | None = None) -> list[tuple[int, str]]:
        """Re-queue (or fail, after `max_attempts`) running jobs whose heartbeat stopped.

        `active` lists Celery task ids that live workers report; a job among them is left
        alone. Jobs queued for longer than `queued_resend_after` are sent to their queue again
        (`resend_queued`). Returns (job id, "requeued" | "failed" | "cancelled" | "resent")
        for each job handled.
        """
        actions: list[tuple[int, str]] = self.resend_queued()
        timeout = self.settings.reaper_timeout if timeout is None else timeout
        cutoff = utcnow() - timedelta(seconds=timeout)
        stale_q = select(Job.id, Job.attempts, Job.celery_task_id).where(
            Job.status == JobStatus.running.value,
            or_(Job.heartbeat_at.is_(None), Job.heartbeat_at < cutoff))
        with self._sessions() as s:
            stale = list(s.execute(stale_q))
        if not stale:
            return actions
        alive = (active() if active else None) or set()
        for job_id, attempt, task_id in stale:
            if task_id in alive:
                continue
            action = self._reap_one(job_id, attempt, cutoff)
            if action:
                actions.append((job_id, action))
        return actions

    def resend_queued(self, older_than: float | None = None) -> list[tuple[int, str]]:
        """Send again every job queued (or last sent) longer than `older_than` seconds ago
        (default: `queued_resend_after`): its broker message may be lost (a broker restarted
        without persistence, a queue purged). Claims are fenced, so a job whose first message
        does arrive still runs once. For a queued job, `heartbeat_at` holds when it was last
        sent."""
        older_than = self.settings.queued_resend_after if older_than is None else older_than
        cutoff = utcnow() - timedelta(seconds=older_than)
        sent_at = func.coalesce(Job.heartbeat_at, Job.created_at)
        query = select(Job.id).where(Job.status == JobStatus.queued.value, sent_at < cutoff)
        with self._sessions() as s:
            due = list(s.scalars(query.order_by(Job.id)))
        actions = []
        for job_id in due:
            sent = self._resend_one(job_id, cutoff)
            if sent is not None:
                try:
                    self._enqueue(job_id, *sent)
                except Exception:  # the broker is down: the next pass tries again
                    log.exception("job %s: could not re-send to queue %s", job_id, sent[0])
                    continue
                log.warning("job %s: queued since before %s, sent to queue %s again", job_id,
                            cutoff.isoformat(timespec="seconds"), sent[0])
                actions.append((job_id, "resent"))
        return actions

    @db.retry_writes()
    def _resend_one(self, job_id: int, cutoff: datetime) -> tuple[str, str] | None:
        task_id = str(uuid.uuid4())
        with self._tx() as s:
            job = s.scalar(select(Job).where(
                Job.id == job_id, Job.status == JobStatus.queued.value,
                func.coalesce(Job.heartbeat_at, Job.created_at) < cutoff).with_for_update())
            if job is None:  # claimed, cancelled or re-sent by another reaper meanwhile
                return None
            job.heartbeat_at = utcnow()
            job.celery_task_id = task_id
            return job.queue, task_id

    @db.retry_writes()
    def _reap_one(self, job_id: int, attempt: int, cutoff: datetime) -> str | None:
        task_id = str(uuid.uuid4())
        with self._tx() as s:
            job = s.scalar(select(Job).where(
                self._fenced(job_id, attempt),
                or_(Job.heartbeat_at.is_(None), Job.heartbeat_at < cutoff)).with_for_update())
            if job is None:  # it came back to life, or another reaper got it
                return None
            lost = f"worker {job.worker_host} lost (no heartbeat since {job.heartbeat_at})"
            if job.cancel_requested:
                job.status, job.finished_at = JobStatus.cancelled.value, utcnow()
                return "cancelled"
            if job.attempts >= self.settings.max_attempts:
                job.status, job.finished_at = JobStatus.failed.value, utcnow()
                job.error = f"{lost}; gave up after {job.attempts} attempts"
                return "failed"
            self._requeue(job, task_id)
            job.error = f"{lost}; re-queued"
            queue = job.queue
        log.warning("job %s: worker lost, re-queued", job_id)
        self._send(job_id, queue, task_id)
        return "requeued"

    # --- results -------------------------------------------------------------------------

    def list_prototypes(self, *, backbone: str | None = None) -> list[Prototype]:
        query = (select(Prototype).options(selectinload(Prototype.backbone),
                                           selectinload(Prototype.mask_sets)
                                           .selectinload(MaskSet.task))
                 .order_by(Prototype.id.desc()))
        if backbone:
            query = query.join(Prototype.backbone).where(Backbone.name == backbone)
        with self._sessions() as s:
            return list(s.scalars(query))

    def prototype_owner(self, uid: str) -> tuple[bool, str | None]:
        """(whether prototype `uid` exists, the owner of the job that made it), in one light
        query (serving checks it on every request)."""
        query = (select(Prototype.id, Job.owner).outerjoin(Job, Job.id == Prototype.job_id)
                 .where(Prototype.uid == uid))
        with self._sessions() as s:
            row = s.execute(query).first()
        return (False, None) if row is None else (True, row[1])

    def served_tasks(self, uid: str) -> list[tuple[str, str]]:
        """(task name, masks folder) of a prototype's tasks in order, read without the rest
        of the prototype (serving checks this on every request)."""
        query = (select(Task.name, MaskSet.artifact_path)
                 .join(MaskSet.task).join(MaskSet.prototype)
                 .where(Prototype.uid == uid).order_by(MaskSet.position))
        with self._sessions() as s:
            rows = [(name, path) for name, path in s.execute(query)]
            if not rows and s.scalar(select(Prototype.id).where(Prototype.uid == uid)) is None:
                raise NotFoundError(f"no prototype {uid}")
            return rows

    def get_prototype(self, uid: str) -> Prototype:
        query = (select(Prototype).where(Prototype.uid == uid)
                 .options(selectinload(Prototype.backbone),
                          selectinload(Prototype.mask_sets).selectinload(MaskSet.task)))
        with self._sessions() as s:
            proto = s.scalar(query)
            if proto is None:
                raise NotFoundError(f"no prototype {uid}")
            return proto

    def job_owners(self, job_ids: Iterable[int | None]) -> dict[int, str]:
        """job id -> owner, for the given ids (one query; missing ids are left out)."""
        ids = {i for i in job_ids if i is not None}
        if not ids:
            return {}
        with self._sessions() as s:
            return dict(s.execute(select(Job.id, Job.owner).where(Job.id.in_(ids))).all())

    def prototype_uids(self, prefix: str, limit: int = 50) -> list[str]:
        """Uids of prototypes starting with `prefix` (the short id shown in the dashboard)."""
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = (select(Prototype.uid).where(Prototype.uid.like(f"{escaped}%", escape="\\"))
                 .order_by(Prototype.id.desc()).limit(limit))
        with self._sessions() as s:
            return list(s.scalars(query))

    def prototype_for_job(self, job_id: int) -> Prototype | None:
        with self._sessions() as s:
            uid = s.scalar(select(Prototype.uid).where(Prototype.job_id == job_id))
        return self.get_prototype(uid) if uid else None

    def list_mask_sets(self, *, prototype_uid: str | None = None,
                       task: str | None = None) -> list[MaskSet]:
        query = (select(MaskSet).options(selectinload(MaskSet.task),
                                         selectinload(MaskSet.prototype))
                 .order_by(MaskSet.id))
        if prototype_uid:
            query = query.join(MaskSet.prototype).where(Prototype.uid == prototype_uid)
        if task:
            query = query.join(MaskSet.task).where(Task.name == task)
        with self._sessions() as s:
            return list(s.scalars(query))

    def delete_mask_set(self, mask_set_id: int, *, remove_files: bool = True) -> None:
        """Drop a task's masks from a prototype (and their folder, after the commit)."""
        with self._tx() as s:
            mask_set = s.get(MaskSet, mask_set_id)
            if mask_set is None:
                raise NotFoundError(f"no mask set {mask_set_id}")
            path = mask_set.artifact_path
            s.execute(delete(MaskSet).where(MaskSet.id == mask_set_id))
        if remove_files and path:
            shutil.rmtree(path, ignore_errors=True)

    def list_tasks(self) -> list[Task]:
        with self._sessions() as s:
            return list(s.scalars(select(Task).order_by(Task.name)))

    def list_backbones(self) -> list[Backbone]:
        with self._sessions() as s:
            return list(s.scalars(select(Backbone).order_by(Backbone.name)))

    def metric_series(self, job_id: int, *, split: str | None = None, name: str | None = None,
                      task: str | None = None) -> dict[tuple[str, str, str], list[tuple[int, float]]]:
        """Curves of a job for plots: (task, split, name) -> [(step, value)] by step."""
        query = (select(MetricPoint.task, MetricPoint.split, MetricPoint.name, MetricPoint.step,
                        MetricPoint.value)
                 .where(MetricPoint.job_id == job_id).order_by(MetricPoint.step))
        for column, value in ((MetricPoint.split, split), (MetricPoint.name, name),
                              (MetricPoint.task, task)):
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
        per_step = (select(MetricPoint.job_id, func.avg(MetricPoint.value).label("mean"))
                    .where(MetricPoint.job_id.in_(ids), MetricPoint.split == "dev",
                           MetricPoint.name == "main")
                    .group_by(MetricPoint.job_id, MetricPoint.step).subquery())
        query = select(per_step.c.job_id, func.max(per_step.c.mean)).group_by(per_step.c.job_id)
        with self._sessions() as s:
            return {int(job_id): float(best) for job_id, best in s.execute(query)}

    def count_metric_points(self, job_id: int) -> int:
        with self._sessions() as s:
            return int(s.scalar(select(func.count()).where(MetricPoint.job_id == job_id)) or 0)

    # --- get-or-create of reference rows --------------------------------------------------

    def _ensure_names(self, model: type[Backbone] | type[Task], names: list[str]) -> None:
        """Insert missing rows by unique name (safe when two workers finish at once)."""
        with self._tx() as s:
            insert = _insert_for(s)
            stmt = insert(model).values([{"name": n, "created_at": utcnow()} for n in names])
            s.execute(stmt.on_conflict_do_nothing(index_elements=["name"]))

    @staticmethod
    def _backbone(s: Session, name: str, storage: dict[str, Any]) -> Backbone:
        row = s.scalar(select(Backbone).where(Backbone.name == name))
        assert row is not None, "created by _ensure_names"
        row.source = "tiny" if name.startswith("tiny-") else row.source
        if storage.get("backbone_params"):
            row.num_params = int(storage["backbone_params"])
        return row

    @staticmethod
    def _task(s: Session, name: str, info: dict[str, Any]) -> Task:
        row = s.scalar(select(Task).where(Task.name == name))
        assert row is not None, "created by _ensure_names"
        row.source = info.get("source", row.source or "file")
        row.text_columns = list(info.get("text_columns") or [])
        labels = info.get("label_names")
        row.label_names = list(labels) if labels is not None else None
        row.metrics = list(info.get("metrics") or [])
        row.main_metric = info.get("main_metric") or ""
        row.sizes = info.get("sizes")
        row.description = info.get("description") or ""
        s.flush()
        return row


@lru_cache(maxsize=4)
def _registry_for(url: str) -> Registry:
    settings = get_settings()
    return Registry(url, settings=settings, migrate=settings.auto_migrate)


def get_registry() -> Registry:
    """The process-wide registry on the settings' database, migrated on first use."""
    return _registry_for(get_settings().database_url)


def reset_registry() -> None:
    _registry_for.cache_clear()

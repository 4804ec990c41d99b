"""Prototypes that grow: jobs that add tasks onto a registered prototype.

A job whose spec names `base_prototype` trains only new tasks over that prototype (frozen).
Here: checking such a spec against the prototype (method fields, task names) and turning it
into the prototype's config; registering what the job added, in order, under row locks, so two
add-jobs finishing at once both land; and the prototype's task history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from propetl.checkpoint import CheckpointError
from propetl.continual import (
    OntoError,
    check_task_names,
    conflict_message,
    method_conflicts,
    read_base,
    rebased_config,
)

from . import db
from .models import Job, MaskSet, Prototype, Task
from .registry import InvalidStateError, Registry, RunOutcome
from .specs import DATA_SUFFIXES, JobSpec, backbone_problems, config_invalid


class BaseConflictError(InvalidStateError):
    """A job spec cannot add its tasks onto the named prototype (the message says why)."""


def task_name(task: str) -> str:
    """The name a job's task gets on a prototype: a catalog name, or a data file's stem."""
    path = Path(task)
    return path.stem if path.suffix.lower() in DATA_SUFFIXES else task


def rebase_spec(
    registry: Registry, spec: JobSpec, replace_option: str = "replace_tasks"
) -> JobSpec:
    """For a spec with `base_prototype`: refuse method fields given with another value than
    the prototype's (naming each) and task names already on it (unless in `replace_tasks`),
    then return the spec with the prototype's backbone and ProPETL config, checked against
    that backbone (a `ValidationError` located in `config`). Other specs are returned as
    they are (`replace_tasks` without a base is refused)."""
    if not spec.base_prototype:
        if spec.replace_tasks:
            raise BaseConflictError(
                "replace_tasks retrains tasks of a prototype: give base_prototype too"
            )
        return spec
    proto = registry.get_prototype(spec.base_prototype)  # NotFoundError
    label = f"prototype {proto.uid[:8]}"
    try:
        base = read_base(proto.artifact_path)
    except CheckpointError as err:
        raise BaseConflictError(f"{label}: its model folder cannot be read: {err}") from err
    conflicts = method_conflicts(base, spec.given_method)
    if conflicts:
        raise BaseConflictError(conflict_message(conflicts, label))
    existing = [m.task.name for m in proto.mask_sets]
    try:
        check_task_names(
            existing, [task_name(t) for t in spec.config.tasks], spec.replace_tasks, replace_option
        )
    except OntoError as err:
        raise BaseConflictError(f"{label}: {err}") from err
    config = rebased_config(base, spec.config, spec.given_method)
    problems = backbone_problems(config)  # validated on the prototype's backbone only now
    if problems:
        raise config_invalid(problems)
    rebased = spec.model_copy(update={"config": config, "base_prototype": proto.uid})
    rebased._given = spec.given_method
    return rebased


@dataclass
class TaskEntry:
    """One task of a prototype, in the prototype's order."""

    position: int
    task: str
    mask_set_id: int
    job_id: int | None
    job_name: str | None
    added_at: datetime
    mask_bytes: int
    mask_bits: int
    test_metrics: dict[str, Any]
    dev_metrics: dict[str, Any]
    artifact_path: str

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["added_at"] = self.added_at.isoformat()
        return out


def task_history(registry: Registry, uid: str) -> list[TaskEntry]:
    """The tasks of prototype `uid` in the order they were added, each with the job that
    trained it, when, its bytes and metrics."""
    proto = registry.get_prototype(uid)
    names = dict(_job_names(registry, [m.job_id for m in proto.mask_sets]))
    return [
        TaskEntry(
            m.position,
            m.task.name,
            m.id,
            m.job_id,
            names.get(m.job_id or -1),
            m.created_at,
            m.mask_bytes,
            m.mask_bits,
            dict(m.test_metrics),
            dict(m.dev_metrics),
            m.artifact_path,
        )
        for m in proto.mask_sets
    ]


def _job_names(registry: Registry, ids: list[int | None]) -> list[tuple[int, str]]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return []
    with registry._sessions() as s:
        return [(i, n) for i, n in s.execute(select(Job.id, Job.name).where(Job.id.in_(wanted)))]


def tasks_added_by(registry: Registry, job_id: int) -> list[str]:
    """Names of the tasks job `job_id` registered (on any prototype)."""
    query = (
        select(Task.name)
        .join(MaskSet, MaskSet.task_id == Task.id)
        .where(MaskSet.job_id == job_id)
        .order_by(MaskSet.position)
    )
    with registry._sessions() as s:
        return list(s.scalars(query))


@db.retry_writes()
def finish_add_job(
    registry: Registry, job_id: int, attempt: int, uid: str, outcome: RunOutcome, replace: list[str]
) -> str | None:
    """Mark add-job `job_id` succeeded and append its tasks to prototype `uid`, atomically.

    The prototype row is locked (PostgreSQL: SELECT ... FOR UPDATE; SQLite serialises
    writers) while the next positions are taken, and (prototype, position) and (prototype,
    task) are unique, so two add-jobs finishing at once both land, one after the other.
    A replaced task's old row is dropped in the same transaction. Returns `uid`, or None when
    this attempt no longer owns the job (nothing written)."""
    registry._ensure_names(Task, list(outcome.tasks))
    for _ in range(5):
        try:
            return _append(registry, job_id, attempt, uid, outcome, replace)
        except IntegrityError as err:  # a concurrent append took the position: try again
            if "position" not in str(err.orig).lower():
                raise BaseConflictError(
                    f"prototype {uid[:8]}: a task of this job is already "
                    f"on it (added by another job meanwhile)"
                ) from err
    raise RuntimeError(f"prototype {uid[:8]}: could not take a position for job {job_id}")


def _append(
    registry: Registry, job_id: int, attempt: int, uid: str, outcome: RunOutcome, replace: list[str]
) -> str | None:
    with registry._tx() as s:
        job = s.scalar(select(Job).where(registry._fenced(job_id, attempt)).with_for_update())
        if job is None:
            return None
        proto = s.scalar(select(Prototype).where(Prototype.uid == uid).with_for_update())
        if proto is None:
            raise BaseConflictError(f"prototype {uid[:8]} was deleted while job {job_id} ran")
        if replace:
            ids = select(Task.id).where(Task.name.in_(replace))
            s.execute(
                delete(MaskSet).where(MaskSet.prototype_id == proto.id, MaskSet.task_id.in_(ids))
            )
        last = s.scalar(select(func.max(MaskSet.position)).where(MaskSet.prototype_id == proto.id))
        position = 0 if last is None else last + 1
        keep = proto.config.get("keep") if proto.sharing != "none" else None
        for name, result in outcome.tasks.items():
            s.add(
                MaskSet(
                    prototype_id=proto.id,
                    task=registry._task(s, name, result.info),
                    artifact_path=result.artifact_path,
                    keep_ratio=keep,
                    job_id=job.id,
                    position=position,
                    mask_bits=result.mask_bits,
                    mask_bytes=result.mask_bytes,
                    density=list(result.density),
                    dev_metrics=result.dev_metrics,
                    test_metrics=result.test_metrics,
                    task_info=dict(result.info),
                )
            )
            position += 1
        job.mark_succeeded(outcome.steps)
        s.flush()
    return uid

"""Running one job: claim it, train with progress and heartbeats, then register or record.

When the registry database is unreachable, every write is retried with back-off for
`PROPETL_DB_RETRY_SECONDS` (see `app.db.retry_writes`). Past that bound:
- while claiming, `RegistryUnreachable` is raised and the Celery task retries the delivery
  later (the job stays queued, nothing is lost);
- at the end of the run, the job is left `running` with a stale heartbeat, and the reaper
  re-queues it once the database is back; the next attempt resumes from the last checkpoint.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import traceback
import uuid
from pathlib import Path

from sqlalchemy.exc import DBAPIError

from app.db import is_connection_error
from app.registry import Claim, Registry, get_registry

from .artifacts import ArtifactError, outcome_of, publish_model
from .growing import register_added
from .reporting import Heartbeat, ProgressSink, replay_log

log = logging.getLogger(__name__)


#: Celery task ids of the jobs this process is running now (its reaper never reaps them,
#: however late their heartbeat: a long GIL-holding call can delay the heartbeat thread).
RUNNING_HERE: set[str] = set()


class RegistryUnreachable(RuntimeError):
    """The registry database stayed unreachable for the whole retry bound."""


def worker_host() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _error_text(err: BaseException) -> str:
    tail = "".join(traceback.format_exception(type(err), err, err.__traceback__)[-6:])
    return f"{err.__class__.__name__}: {err}\n\n{tail}"


def _unreachable(err: BaseException) -> bool:
    return isinstance(err, DBAPIError) and is_connection_error(err)


def execute(job_id: int, *, task_id: str | None = None, registry: Registry | None = None) -> str:
    """Run job `job_id` to its end; returns "succeeded", "cancelled", "failed", "lost",
    "skipped" or "deferred" (the registry was unreachable at the end; the reaper re-queues).

    A delivery of a job that is finished, cancelled or alive on another worker is skipped,
    so each job succeeds exactly once however often its message arrives.
    """
    registry = registry or get_registry()
    try:
        claim = registry.claim_job(job_id, host=worker_host(), task_id=task_id)
    except DBAPIError as err:
        if not _unreachable(err):
            raise
        raise RegistryUnreachable(
            f"job {job_id}: registry unreachable while claiming: {err.__class__.__name__}"
        ) from err
    if claim is None:
        log.info("job %s: not runnable here (finished, cancelled or running elsewhere)", job_id)
        return "skipped"
    log.info("job %s: attempt %s in %s", job_id, claim.attempt, claim.run_dir)
    if task_id:
        RUNNING_HERE.add(task_id)
    try:
        return _run(registry, job_id, claim)
    except DBAPIError as err:
        if not _unreachable(err):
            raise
        log.error(
            "job %s: registry unreachable for %.0fs; leaving the job to the reaper "
            "(it resumes from its last checkpoint)",
            job_id,
            registry.settings.db_retry_seconds,
        )
        return "deferred"
    finally:
        RUNNING_HERE.discard(task_id or "")


def _run(registry: Registry, job_id: int, claim: Claim) -> str:
    if claim.spec.label is not None:  # batch prediction: label a file, train nothing
        from .labelling import run_label_job

        return run_label_job(registry, job_id, claim)
    settings = registry.settings
    attempt = claim.attempt
    if claim.attempt > 1:
        replay_log(registry, job_id, Path(claim.run_dir))
    sink = ProgressSink(registry, job_id, attempt, settings.progress_interval)
    with Heartbeat(registry, job_id, attempt, settings.heartbeat_interval) as beat:
        try:
            from dataclasses import replace

            from app.uploads import resolve_tasks
            from propetl.training import train

            config = claim.spec.config
            files = resolve_tasks(config.tasks, claim.spec.owner, settings)
            if files != config.tasks:  # the owner's uploads, named in the spec by file name
                config = replace(config, tasks=files)
            onto = _base_folder(registry, claim)
            result = train(
                config,
                Path(claim.run_dir),
                on_progress=sink,
                should_stop=beat.should_stop,
                resume=True,
                onto=onto,
                replace=list(claim.spec.replace_tasks),
            )
        except Exception as err:
            log.exception("job %s failed", job_id)
            sink.flush(strict=True)
            registry.fail_job(job_id, _error_text(err), attempt=attempt)
            return "failed"
        sink.flush(strict=True)
        if beat.lost.is_set():
            log.warning("job %s: another worker took over; leaving it alone", job_id)
            return "lost"
        if result.status == "cancelled":
            registry.mark_cancelled(job_id, attempt, step=result.steps)
            return "cancelled"
        if claim.spec.base_prototype:
            return register_added(
                registry,
                job_id,
                attempt,
                result,
                claim.spec.base_prototype,
                list(claim.spec.replace_tasks),
            )
        return _register(registry, job_id, attempt, result)


def _base_folder(registry: Registry, claim: Claim) -> Path | None:
    """The model folder of the prototype an add-job grows (None for a job that makes one)."""
    if not claim.spec.base_prototype:
        return None
    return Path(registry.get_prototype(claim.spec.base_prototype).artifact_path)


def _register(registry: Registry, job_id: int, attempt: int, result: object) -> str:
    """Publish the model folder and register it; on any failure leave nothing behind."""
    settings = registry.settings
    assert settings.artifacts_dir is not None
    uid = str(uuid.uuid4())
    published: Path | None = None
    try:
        model_dir = getattr(result, "model_dir", None)
        if model_dir is None:
            raise RuntimeError("the engine reported success without a model folder")
        published = publish_model(Path(model_dir), settings.artifacts_dir, uid)
        if registry.finish_job(job_id, attempt, outcome_of(result, published, uid)) is None:
            if _registered(registry, job_id, uid):  # committed, but the reply was lost
                return "succeeded"
            shutil.rmtree(published, ignore_errors=True)
            return "lost"
    except Exception as err:
        # a folder the registry may point at stays; one it surely does not is removed
        if published is not None and _registered(registry, job_id, uid) is False:
            shutil.rmtree(published, ignore_errors=True)
        if _unreachable(err):
            raise
        log.exception("job %s: could not register its result", job_id)
        message = str(err) if isinstance(err, ArtifactError) else _error_text(err)
        registry.fail_job(job_id, message, attempt=attempt)
        return "failed"
    log.info("job %s succeeded: prototype %s", job_id, uid)
    return "succeeded"


def _registered(registry: Registry, job_id: int, uid: str) -> bool | None:
    """Whether prototype `uid` is registered for the job (None when the registry can't say)."""
    try:
        proto = registry.prototype_for_job(job_id)
    except DBAPIError:
        return None
    return proto is not None and proto.uid == uid

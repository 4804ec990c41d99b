"""Running one job: claim it, train with progress and heartbeats, then register or record."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import traceback
import uuid
from pathlib import Path

from app.registry import Registry, get_registry

from .artifacts import outcome_of, publish_model
from .reporting import Heartbeat, ProgressSink

log = logging.getLogger(__name__)


def worker_host() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _error_text(err: BaseException) -> str:
    tail = "".join(traceback.format_exception(type(err), err, err.__traceback__)[-6:])
    return f"{err.__class__.__name__}: {err}\n\n{tail}"


def execute(job_id: int, *, task_id: str | None = None, registry: Registry | None = None) -> str:
    """Run job `job_id` to its end; returns "succeeded", "cancelled", "failed", "lost" or "skipped".

    A delivery of a job that is finished, cancelled or alive on another worker is skipped,
    so each job succeeds exactly once however often its message arrives.
    """
    registry = registry or get_registry()
    settings = registry.settings
    claim = registry.claim_job(job_id, host=worker_host(), task_id=task_id)
    if claim is None:
        log.info("job %s: not runnable here (finished, cancelled or running elsewhere)", job_id)
        return "skipped"
    log.info("job %s: attempt %s in %s", job_id, claim.attempt, claim.run_dir)
    sink = ProgressSink(registry, job_id, claim.attempt, settings.progress_interval)
    with Heartbeat(registry, job_id, claim.attempt, settings.heartbeat_interval) as beat:
        try:
            from propetl.training import train

            result = train(claim.spec.config, Path(claim.run_dir), on_progress=sink,
                           should_stop=beat.should_stop, resume=True)
            sink.flush()
        except Exception as err:
            log.exception("job %s failed", job_id)
            sink.flush()
            registry.fail_job(job_id, _error_text(err), attempt=claim.attempt)
            return "failed"
        if beat.lost.is_set():
            log.warning("job %s: another worker took over; leaving it alone", job_id)
            return "lost"
        if result.status == "cancelled":
            registry.mark_cancelled(job_id, claim.attempt, step=result.steps)
            return "cancelled"
        return _register(registry, job_id, claim.attempt, result)


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
            shutil.rmtree(published, ignore_errors=True)
            return "lost"
    except Exception as err:
        log.exception("job %s: could not register its result", job_id)
        if published is not None:
            shutil.rmtree(published, ignore_errors=True)
        registry.fail_job(job_id, _error_text(err), attempt=attempt)
        return "failed"
    log.info("job %s succeeded: prototype %s", job_id, uid)
    return "succeeded"

"""Registering an add-job: its new task folders go into the prototype's artifacts, then the
registry appends them; on any failure the prototype's folder is left as it was."""

from __future__ import annotations

import logging
import traceback
from pathlib import Path

from sqlalchemy.exc import DBAPIError

from app.db import is_connection_error
from app.prototype_tasks import BaseConflictError, finish_add_job, tasks_added_by
from app.registry import Registry
from propetl.checkpoint import CheckpointError
from propetl.continual import TaskPlacement, add_task_folders

from .artifacts import outcome_of

log = logging.getLogger(__name__)


def register_added(
    registry: Registry, job_id: int, attempt: int, result: object, uid: str, replace: list[str]
) -> str:
    """Place the job's new task folders into prototype `uid`'s folder (only those; a name
    there already is refused unless replaced) and append the tasks in the registry."""
    placement: TaskPlacement | None = None
    try:
        model_dir = getattr(result, "model_dir", None)
        if model_dir is None:
            raise RuntimeError("the engine reported success without a model folder")
        target = Path(registry.get_prototype(uid).artifact_path)
        tasks = list(getattr(result, "tasks", {}))
        placement = add_task_folders(Path(model_dir), tasks, target, replace)
        outcome = outcome_of(result, target, uid)
        if finish_add_job(registry, job_id, attempt, uid, outcome, replace) is None:
            if _added(registry, job_id):  # committed, but the reply was lost
                placement.commit()
                return "succeeded"
            placement.rollback()
            return "lost"
        placement.commit()
    except Exception as err:
        if placement is not None and _added(registry, job_id) is False:
            placement.rollback()
        if isinstance(err, DBAPIError) and is_connection_error(err):
            raise
        log.exception("job %s: could not add its tasks to prototype %s", job_id, uid)
        known = (CheckpointError, BaseConflictError, OSError)
        message = (
            str(err)
            if isinstance(err, known)
            else f"{err.__class__.__name__}: {err}\n\n"
            + "".join(traceback.format_exception(err)[-6:])
        )
        registry.fail_job(job_id, message, attempt=attempt)
        return "failed"
    log.info("job %s succeeded: tasks %s added to prototype %s", job_id, tasks, uid)
    return "succeeded"


def _added(registry: Registry, job_id: int) -> bool | None:
    """Whether the job's tasks are registered (None when the registry can't say)."""
    try:
        return bool(tasks_added_by(registry, job_id))
    except DBAPIError:
        return None

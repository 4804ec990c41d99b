"""Batch prediction: a job that labels a whole uploaded file on a worker.

The upload is stored under `<artifacts>/labels/<id>/input.<csv|jsonl>`, a job whose spec
carries a `LabelSpec` is queued, a worker streams the file through the prototype
(`propetl.labelling`) with progress in the Jobs tab, and the result CSV lands at
`<artifacts>/labels/job-<job id>.csv`, downloadable by the job's owner.
"""

from __future__ import annotations

import re
import shutil
import uuid
from pathlib import Path
from typing import IO, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .settings import Settings, get_settings

_INPUT = re.compile(r"^[0-9a-f]{32}/input\.(csv|jsonl)$")
_COLUMN = re.compile(r"^[^\x00-\x1f]{1,100}$")


class LabelSpec(BaseModel):
    """What a labelling job reads: a stored upload, the prototype, and the columns."""

    model_config = ConfigDict(extra="forbid")

    prototype: str = Field(min_length=1, max_length=36)
    input: str = Field(description="the stored upload, relative to <artifacts>/labels")
    task: str | None = Field(
        None, max_length=200, description="the task of rows without a task column value"
    )
    text_column: str = "text"
    pair_column: str | None = None
    task_column: str = "task"
    filename: str = Field("", max_length=255, description="the uploaded file's name")

    @field_validator("input")
    @classmethod
    def _stored_upload(cls, value: str) -> str:
        if not _INPUT.match(value):  # never a path of the caller's choosing
            raise ValueError("input must name a stored upload (<id>/input.csv|jsonl)")
        return value

    @field_validator("text_column", "task_column", "pair_column")
    @classmethod
    def _column(cls, value: str | None) -> str | None:
        if value is not None and not _COLUMN.match(value):
            raise ValueError("a column name is 1-100 printable characters")
        return value


def labels_dir(settings: Settings | None = None) -> Path:
    settings = settings or get_settings()
    assert settings.artifacts_dir is not None
    return settings.artifacts_dir / "labels"


def input_path(spec: LabelSpec, settings: Settings | None = None) -> Path:
    return labels_dir(settings) / spec.input


def result_path(job_id: int, settings: Settings | None = None) -> Path:
    """Where a labelling job's CSV is written."""
    return labels_dir(settings) / f"job-{job_id}.csv"


def input_name(filename: str) -> str:
    """A new `LabelSpec.input` for an uploaded file named `filename` (.csv or .jsonl)."""
    from propetl.labelling import SUFFIXES, LabelFileError

    suffix = Path(filename or "").suffix.lower()
    if suffix not in SUFFIXES:
        raise LabelFileError(f"{filename or 'the file'}: give a .csv or .jsonl file")
    return f"{uuid.uuid4().hex}/input{suffix}"


def store_upload(stream: IO[bytes], name: str, settings: Settings | None = None) -> Path:
    """Copy an uploaded file (streaming) into the labels folder as `name` (`input_name`);
    one above the upload limit is `UploadTooLarge`, and nothing of it is kept."""
    from .uploads import copy_capped

    path = labels_dir(settings) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return copy_capped(stream, path)
    except BaseException:
        shutil.rmtree(path.parent, ignore_errors=True)
        raise


def submit_label_job(
    registry: Any,
    proto: Any,
    owner: str,
    stream: IO[bytes],
    filename: str,
    *,
    task: str | None = None,
    text_column: str = "text",
    pair_column: str | None = None,
    task_column: str = "task",
) -> int:
    """Check the options, store the upload, check the whole file, and queue a labelling job
    over `proto` (already checked to be the caller's) owned by `owner`; returns the job id.
    Every refusal is a `LabelFileError`, and leaves no stored file behind."""
    from propetl.labelling import LabelFileError, check_columns

    from .specs import JobSpec, describe_errors

    tasks = [m.task.name for m in proto.mask_sets]
    if not tasks:
        raise LabelFileError(f"prototype {proto.uid[:8]} has no tasks left to label with")
    if task and task not in tasks:
        raise LabelFileError(f"unknown task {task!r}; this prototype has: {', '.join(tasks)}")
    try:
        label = LabelSpec(
            prototype=proto.uid,
            input=input_name(filename),
            task=task or None,
            text_column=text_column or "text",
            pair_column=pair_column or None,
            task_column=task_column or "task",
            filename=Path(filename).name[:255],
        )
    except ValidationError as err:
        raise LabelFileError(describe_errors(err).replace("\n", "; ")) from None
    path = store_upload(stream, label.input, registry.settings)
    try:
        named = check_columns(
            path, label.text_column, label.task_column, label.task, label.pair_column, whole=True
        )
        # the job lists the prototype's tasks the rows name (rows naming others get an error)
        config = {
            **(proto.train_config or {}),
            "backbone": proto.backbone.name,
            "tasks": [t for t in named if t in tasks] or [task or tasks[0]],
        }
        spec = JobSpec.model_validate(
            {
                "name": f"label {label.filename or 'file'} with {proto.uid[:8]}",
                "owner": owner,
                "config": config,
                "label": label.model_dump(),
            },
            context={"resolve": False, "labelling": True},
        )
    except (LabelFileError, UnicodeDecodeError, ValidationError) as err:
        shutil.rmtree(path.parent, ignore_errors=True)
        if isinstance(err, ValidationError):
            raise LabelFileError(
                "the labelling job is not valid: " + describe_errors(err).replace("\n", "; ")
            ) from None
        raise LabelFileError(str(err)) from err
    return registry.submit_job(spec)

"""REST routes of batch prediction (they join `app.api.router`): queue a job that labels a
whole uploaded file on a worker, and download the labelled CSV when it is done."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Form, Request, UploadFile, status
from fastapi.responses import FileResponse

from propetl.labelling import LabelFileError

from . import views
from .access import Access
from .api import TAKES_FILE, JobId, RegistryDep, UserDep, file_reply, router
from .labels import result_path, submit_label_job
from .playground import PlaygroundError
from .registry import InvalidStateError, Registry


def _access(request: Request, registry: Registry, user: str) -> Access:
    auth = request.app.state.auth
    return Access.of(auth, user if auth.enabled else None, registry)


@router.post(
    "/prototypes/{uid}/label", status_code=status.HTTP_201_CREATED, tags=["predict"], **TAKES_FILE
)
def label_file(
    uid: str,
    file: UploadFile,
    registry: RegistryDep,
    request: Request,
    user: UserDep,
    task: Annotated[str | None, Form()] = None,
    text_column: Annotated[str, Form()] = "text",
    pair_column: Annotated[str | None, Form()] = None,
    task_column: Annotated[str, Form()] = "task",
) -> dict[str, Any]:
    """Queue a job that labels every row of a CSV / JSONL file (a `text` column, and a
    `task` column, or the `task` field for rows without one) on a worker; its progress is the
    job's, and `GET /api/jobs/{id}/labels` returns the labelled CSV when it is done. A file
    above the upload limit is refused (413)."""
    access = _access(request, registry, user)
    proto = access.prototype(uid)
    try:
        job_id = submit_label_job(
            registry,
            proto,
            access.owner,
            file.file,
            file.filename or "",
            task=task,
            text_column=text_column,
            pair_column=pair_column,
            task_column=task_column,
        )
    except LabelFileError as err:
        raise PlaygroundError(str(err)) from err  # 422 with the reason
    return views.job_summary(registry.get_job(job_id))


@router.get(
    "/jobs/{job_id}/labels",
    tags=["jobs"],
    **file_reply("text/csv", "row, task, text, label, score, probabilities, error"),
)
def download_labels(
    job_id: JobId, registry: RegistryDep, request: Request, user: UserDep
) -> FileResponse:
    """The CSV a finished labelling job wrote (row, task, text, label, score, probabilities,
    error); 409 until the job has succeeded."""
    job = _access(request, registry, user).job(job_id)
    if not job.spec.get("label"):
        raise InvalidStateError(f"job {job_id} is not a labelling job")
    path = result_path(job_id, registry.settings)
    if job.status != "succeeded" or not path.is_file():
        raise InvalidStateError(
            f"job {job_id} is {job.status}; its labels are written when it succeeds"
        )
    return FileResponse(path, media_type="text/csv", filename=f"labels-job-{job_id}.csv")

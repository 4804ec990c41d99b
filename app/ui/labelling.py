"""Playground section "Label a file": upload a CSV / JSONL of texts, a worker labels every
row (a labelling job, with its progress in the Jobs tab), then download the labelled CSV."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import gradio as gr

from ..access import Access
from ..auth import get_auth
from ..labels import result_path, submit_label_job
from ..playground import ALL_TASKS
from ..registry import NotFoundError, get_registry


def _access(request: gr.Request | None) -> Access:
    """The event's user (Gradio's login), through the one access policy."""
    auth = get_auth()
    user = getattr(request, "username", None) if request is not None else None
    return Access.of(auth, user if auth.enabled else None, get_registry())


def submit(
    uid: str | None,
    task: str | None,
    path: str | None,
    text_column: str,
    request: gr.Request | None = None,
) -> tuple[str, int | None, Any]:
    """Queue the labelling job; (message, job id, the download hidden)."""
    hidden = gr.update(value=None, visible=False)
    if not uid:
        return "Choose a prototype first.", None, hidden
    if not path:
        return "Upload a .csv or .jsonl file with a text column first.", None, hidden
    access = _access(request)
    try:
        proto = access.prototype(uid)
        with open(path, "rb") as stream:
            job_id = submit_label_job(
                get_registry(),
                proto,
                access.owner,
                stream,
                Path(path).name,
                task=None if task in (None, "", ALL_TASKS) else task,
                text_column=(text_column or "text").strip(),
            )
    except (ValueError, NotFoundError) as err:
        return f"✗ {err}", None, hidden
    return (
        (
            f"Queued labelling job **{job_id}**: its progress is in the Jobs tab; press "
            "“Check” for the file."
        ),
        job_id,
        hidden,
    )


def check(job_id: int | None, request: gr.Request | None = None) -> tuple[str, Any]:
    """The job's state, and its labelled CSV once it has succeeded."""
    if not job_id:
        return "No labelling job yet.", gr.update(visible=False)
    try:
        job = _access(request).job(int(job_id))
    except NotFoundError as err:
        return f"✗ {err}", gr.update(visible=False)
    done = f"{job.step} / {job.total_steps or '?'} rows"
    if job.status != "succeeded":
        note = f": {job.error.splitlines()[0]}" if job.error else ""
        return f"Job {job.id} is **{job.status}** ({done}){note}", gr.update(visible=False)
    copy = Path(tempfile.mkdtemp(prefix="propetl-labels-")) / f"labels-job-{job.id}.csv"
    shutil.copyfile(result_path(job.id), copy)  # a copy Gradio may serve
    return f"Job {job.id} **succeeded** ({done})", gr.update(value=str(copy), visible=True)


def build(proto: gr.Dropdown, task: gr.Dropdown) -> None:
    """The section, under the Playground's single-text form."""
    private: dict[str, Any] = {"api_visibility": "private"}
    with gr.Accordion(
        "Label a file (batch prediction on a worker)", open=False, elem_id="label-section"
    ):
        gr.Markdown(
            "A `.csv` or `.jsonl` file with a text column and, optionally, a `task` "
            "column (rows without one use the task chosen above). Every row is "
            "labelled on a worker; the result has the label and each class's "
            "probability per row."
        )
        with gr.Row():
            upload = gr.File(
                label="Texts", file_types=[".csv", ".jsonl"], type="filepath", elem_id="label-file"
            )
            column = gr.Textbox("text", label="Text column", elem_id="label-column")
        with gr.Row():
            go = gr.Button("Label the file", variant="primary", elem_id="label-go")
            look = gr.Button("Check", elem_id="label-check")
        status = gr.Markdown(elem_id="label-status")
        result = gr.File(
            label="Labelled CSV", interactive=False, visible=False, elem_id="label-result"
        )
        job = gr.State(None)
    go.click(submit, [proto, task, upload, column], [status, job, result], **private)
    look.click(check, job, [status, result], **private)

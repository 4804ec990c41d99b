"""The dashboard's client surface: three named endpoints with typed, named parameters.

`gradio_client.Client(url).predict(..., api_name="/launch")` (and `/list_jobs`, `/predict`)
works without the page: nothing here depends on dropdown choices drawn for a browser. Every
other event of the page is private (not callable by the client libraries); the REST API under
`/api` is the complete programmatic interface. Every call goes through the access policy.
"""

from __future__ import annotations

from dataclasses import asdict

import gradio as gr
from pydantic import ValidationError

from .. import views
from ..access import AmbiguousError, for_request
from ..models import MAX_ID, JobStatus
from ..registry import NotFoundError
from ..specs import JobSpec, describe_errors
from .common import Ctx

ENDPOINTS = ("launch", "list_jobs", "predict")
STATUSES = tuple(s.value for s in JobStatus)
#: Defaults are never None: gradio_client treats a None default as a missing argument.
NO_OPTIONS: dict = {}


def install(ctx: Ctx) -> None:
    """Register the endpoints on the Blocks being built."""

    def launch(
        request: gr.Request,
        tasks: list[str],
        backbone: str = "minilm-l6",
        name: str = "",
        config: dict = NO_OPTIONS,
        queue: str = "",
    ) -> dict:
        """Queue a training job: `tasks` (catalog names or your upload names), a backbone,
        and any other job options in `config` (e.g. {"max_steps": 200, "propetl":
        {"petl": "lora", "keep": 0.1}}). Returns the job as `list_jobs` shows it."""
        access = for_request(ctx.auth, request)
        if config is not None and not isinstance(config, dict):
            raise gr.Error(
                f"config must be a mapping of job options (a JSON object such as "
                f'{{"max_steps": 200}}), got {type(config).__name__}',
                print_exception=False,
            )
        data = {
            "name": name or "",
            "queue": queue or None,
            "owner": access.owner,
            "config": {**dict(config or {}), "backbone": backbone, "tasks": list(tasks)},
        }
        try:
            spec = JobSpec.model_validate(data, context={"owner": access.owner})
        except ValidationError as err:
            raise gr.Error(
                "the job is not valid: " + describe_errors(err).replace("\n", "; "),
                print_exception=False,
            ) from None
        job_id = access.registry.submit_job(spec)
        return views.job_summary(access.job(job_id))

    def list_jobs(
        request: gr.Request, status: str = "", sweep: int = 0, limit: int = 50
    ) -> list[dict]:
        """Your jobs, newest first (optionally one status, e.g. "succeeded", or one sweep's
        jobs by its id)."""
        access = for_request(ctx.auth, request)
        if status and status not in STATUSES:
            raise gr.Error(
                f"status must be one of {', '.join(STATUSES)} (or empty for any), got {status!r}",
                print_exception=False,
            )
        if not 0 <= int(sweep) <= MAX_ID:
            raise gr.Error(
                f"sweep must be a sweep's id (1 to {MAX_ID}; 0 for any), got {sweep}",
                print_exception=False,
            )
        jobs = access.jobs(
            status=status or None, sweep_id=sweep or None, limit=max(1, min(int(limit), 500))
        )
        return views.job_rows(access.registry, jobs)

    def predict(
        request: gr.Request, prototype: str, task: str, text: str, text_pair: str = ""
    ) -> dict:
        """Answer `text` for `task` ("all" or "all tasks" for every task) with one of your
        prototypes (its full id or a unique prefix, as the dashboard shows it)."""
        from ..playground import ALL_TASKS, PlaygroundError, get_engine

        access = for_request(ctx.auth, request)
        try:
            proto = access.prototype(prototype)
            task = ALL_TASKS if task == "all" else task  # as the REST API reads it
            answer = get_engine().predict(proto.uid, task, text, text_pair or None)
        except (NotFoundError, AmbiguousError, PlaygroundError, ValueError) as err:
            raise gr.Error(str(err), print_exception=False) from None
        out = asdict(answer)
        out["prototype"] = proto.uid
        return out

    for fn in (launch, list_jobs, predict):
        gr.api(fn, api_name=fn.__name__)

"""The REST API beside the dashboard: jobs, sweeps, tasks, backbones, prototypes, masks,
exports, predict.

Mounted under `/api` by `app.server.create_app`; its OpenAPI schema is `/api/openapi.json`.
With login on, every call but `POST /api/auth/token` needs `Authorization: Bearer <token>`
(or `X-API-Token`), and jobs and masks can only be changed by their owner.
"""

from __future__ import annotations

import asyncio
import math
import os
import pathlib
from collections.abc import Iterator
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Security, UploadFile, status
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.security import APIKeyHeader, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from . import bundles, exports, views
from .access import Access, AmbiguousError
from .auth import Auth, AuthError, ForbiddenError
from .models import MAX_ID, JobStatus
from .playground import ALL_TASKS, Pending, PlaygroundEngine, PlaygroundError, get_engine
from .registry import InvalidStateError, NotFoundError, Registry, get_registry
from .serving import ServerBusyError, retry_after_header
from .settings import get_settings
from .specs import JobSpec, no_tasks_error
from .sweeps import SweepSpec
from .throttle import LoginThrottle, TooManyAttempts, client_address
from .uploads import UploadNotFound, UploadTooLarge


class Problem(BaseModel):
    """An error body: a message, or (422 from request validation) FastAPI's list of errors."""

    detail: str | list[dict[str, Any]]


#: The error answers, documented so that clients and schema checks know them: the first five
#: on every route, 429 on the token route, 503 on prediction.
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "not logged in, or a bad token"},
    403: {"model": Problem, "description": "the work belongs to another user"},
    404: {"model": Problem, "description": "no such job, sweep, prototype or task"},
    409: {"model": Problem, "description": "not possible in the current state"},
    422: {"model": Problem, "description": "invalid request, or an export the format refuses"},
    429: {"model": Problem, "description": "too many failed logins; retry after `Retry-After` s"},
    503: {
        "model": Problem,
        "description": "the prototype's serving queue is full; retry after "
        "`Retry-After` s (nothing was queued)",
    },
}
router = APIRouter(
    prefix="/api", responses={code: ERRORS[code] for code in (401, 403, 404, 409, 422)}
)
#: The routes that answer without login (their own answers documented route by route).
public = APIRouter(prefix="/api")
JobId = Annotated[int, PathParam(ge=1, le=MAX_ID, description="a job's id")]
SweepId = Annotated[int, PathParam(ge=1, le=MAX_ID, description="a sweep's id")]
#: How a token may be sent, declared in the schema; `current_user` reads either itself.
BEARER = HTTPBearer(auto_error=False, description="a token from POST /api/auth/token")
API_TOKEN = APIKeyHeader(
    name="X-API-Token", auto_error=False, description="the same token, in a header of its own"
)


def file_reply(media_type: str, what: str) -> dict[str, Any]:
    """Route options of a route whose 200 is a file (a zip, a CSV), not JSON."""
    return {
        "response_class": Response,
        "responses": {
            200: {
                "description": what,
                "content": {media_type: {"schema": {"type": "string", "format": "binary"}}},
            }
        },
    }


# --- dependencies ----------------------------------------------------------------------


async def registry_dep() -> Registry:
    """The registry (tests override this dependency). The trivial dependencies are async
    so that FastAPI resolves them without a thread hop each."""
    return get_registry()


async def engine_dep() -> PlaygroundEngine:
    """The playground engine (tests override this dependency)."""
    return get_engine()


def _auth(request: Request) -> Auth:
    return request.app.state.auth


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.headers.get("x-api-token")


def current_user(
    request: Request,
    _bearer_scheme: Annotated[Any, Security(BEARER)] = None,
    _token_scheme: Annotated[Any, Security(API_TOKEN)] = None,
) -> str:
    """The caller: the token's user with login on, the default owner without."""
    auth = _auth(request)
    if not auth.enabled:
        return auth.default_owner
    token = _bearer(request)
    if not token:
        raise AuthError(
            "log in first: POST /api/auth/token, then send 'Authorization: Bearer <token>'"
        )
    return auth.verify_token(token)


RegistryDep = Annotated[Registry, Depends(registry_dep)]
EngineDep = Annotated[PlaygroundEngine, Depends(engine_dep)]
UserDep = Annotated[str, Depends(current_user)]


async def access_dep(request: Request, registry: RegistryDep, user: UserDep) -> Access:
    """What the caller may see (`app.access`): others' work is 404 like missing work."""
    return Access(_auth(request), user if _auth(request).enabled else None, registry)


AccessDep = Annotated[Access, Depends(access_dep)]


# --- auth ------------------------------------------------------------------------------


class Credentials(BaseModel):
    username: str
    password: str


class TokenOut(BaseModel):
    token: str
    token_type: str = "bearer"
    user: str


@public.post(
    "/auth/token",
    response_model=TokenOut,
    tags=["auth"],
    responses={code: ERRORS[code] for code in (401, 409, 422, 429)},
)
def login(credentials: Credentials, request: Request) -> TokenOut:
    """Exchange a user's password for an API token."""
    auth = _auth(request)
    if not auth.enabled:
        raise InvalidStateError("login is off on this server (PROPETL_AUTH_ENABLED is not set)")
    throttle: LoginThrottle = request.app.state.login_throttle
    address = client_address(request.scope)
    throttle.check(credentials.username, address)
    if not auth.check_password(credentials.username, credentials.password):
        throttle.failed(credentials.username, address, "api")
        raise AuthError("wrong user name or password")
    return TokenOut(token=auth.issue_token(credentials.username), user=credentials.username)


@router.delete("/auth/token", status_code=status.HTTP_204_NO_CONTENT, tags=["auth"])
def logout(request: Request, user: UserDep) -> Response:
    """Revoke the token of this request."""
    token = _bearer(request)
    if token:
        _auth(request).revoke_token(token)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/auth/me", tags=["auth"])
def me(request: Request, user: UserDep) -> dict[str, Any]:
    """Who the caller is, and whether login is on."""
    return {"user": user, "auth_enabled": _auth(request).enabled}


# --- health ----------------------------------------------------------------------------


@public.get(
    "/health",
    tags=["health"],
    responses={503: {"model": Problem, "description": "the registry database does not answer"}},
)
def health(registry: RegistryDep) -> JSONResponse:
    """For load balancers and compose health checks (no login): 200 while the registry
    database answers, 503 naming the problem when it does not."""
    try:
        registry.ping()
    except Exception as err:  # any failure to answer means not ready
        return JSONResponse(
            {"status": "unavailable", "database": type(err).__name__},
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        )
    return JSONResponse({"status": "ok", "database": "ok"})


# --- jobs ------------------------------------------------------------------------------


def body_errors(
    err: ValidationError, moved: dict[tuple[str, ...], tuple[str, ...]] | None = None
) -> RequestValidationError:
    """A body's problems found after FastAPI read it: the same 422 as its own. `moved`: where
    the body holds what the validated model has at another place (its location prefix)."""

    def loc(at: tuple[Any, ...]) -> tuple[Any, ...]:
        for old, new in (moved or {}).items():
            if at[: len(old)] == old:
                return (*new, *at[len(old) :])
        return at

    return RequestValidationError(
        [{**e, "loc": ("body", *loc(tuple(e["loc"])))} for e in err.errors(include_url=False)]
    )


def _as_caller(model: Any, data: dict[str, Any], access: Access) -> Any:
    """`data` validated again as the caller's (their uploads resolve); problems are the
    same 422 as any request validation error."""
    try:
        return model.model_validate(
            {**data, "owner": access.owner}, context={"owner": access.owner}
        )
    except ValidationError as err:
        raise body_errors(err) from None


@router.post("/jobs", status_code=status.HTTP_201_CREATED, tags=["jobs"])
def submit_job(spec: JobSpec, registry: RegistryDep, access: AccessDep) -> dict[str, Any]:
    """Validate a job spec and queue it; the job is owned by the caller (a task file is one
    of the caller's uploads, named as `GET /api/uploads` lists it)."""
    if not spec.tasks_given:
        raise body_errors(no_tasks_error())
    given = spec.given_method  # as sent: checked against a base prototype's method fields
    spec = _as_caller(JobSpec, spec.to_json_dict(), access)
    if spec.base_prototype:  # the caller's own prototype (a short id is resolved)
        spec = spec.model_copy(update={"base_prototype": access.prototype(spec.base_prototype).uid})
    spec._given = given
    try:
        job_id = registry.submit_job(spec)
    except ValidationError as err:  # onto a prototype: checked on its backbone
        raise body_errors(err) from None
    return views.job_summary(registry.get_job(job_id))


@router.get("/jobs", tags=["jobs"])
def list_jobs(
    registry: RegistryDep,
    access: AccessDep,
    status_: Annotated[JobStatus | None, Query(alias="status")] = None,
    owner: str | None = None,
    sweep: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[dict[str, Any]]:
    """Jobs, newest first (only one sweep's with `sweep`); with login on, the caller's.
    `q` searches names, tasks, owners, tags and notes; `status:`, `task:`, `owner:`, `tag:`
    and `sweep:` terms match one field (`q=task:rotten_tomatoes tag:baseline`)."""
    from .jobsearch import search

    jobs = access.jobs(
        status=status_.value if status_ else None,
        owner=owner,
        sweep_id=sweep,
        limit=500 if q else limit,
    )
    if q:
        jobs = search(jobs, q)[:limit]
    return views.job_rows(registry, jobs)


class JobNotes(BaseModel):
    """Tags and / or the note of a job (omitted fields are left as they are)."""

    model_config = ConfigDict(extra="forbid")

    tags: list[Annotated[str, Field(max_length=40)]] | None = Field(None, max_length=20)
    note: str | None = Field(None, max_length=5000)


@router.patch("/jobs/{job_id}", tags=["jobs"])
def annotate_job(
    job_id: JobId, body: JobNotes, registry: RegistryDep, access: AccessDep
) -> dict[str, Any]:
    """Set a job's tags and note (the job's owner)."""
    job = access.job(job_id)
    job = registry.annotate_job(job.id, tags=body.tags, note=body.note)
    return views.job_row(registry, job)


@router.get(
    "/jobs/{job_id}/metrics.csv",
    tags=["jobs"],
    **file_reply("text/csv", "job, step, split, task, metric, value"),
)
def job_metrics_csv(job_id: JobId, registry: RegistryDep, access: AccessDep) -> Response:
    """Every metric point of a job as CSV: job, step, split, task, metric, value."""
    from .jobsearch import metrics_csv

    job = access.job(job_id)
    return Response(
        metrics_csv(registry, job),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="job-{job.id}-metrics.csv"'},
    )


@router.get("/jobs/{job_id}", tags=["jobs"])
def get_job(job_id: JobId, registry: RegistryDep, access: AccessDep) -> dict[str, Any]:
    """One job with its spec, metric curves and prototype."""
    return views.job_detail(registry, access.job(job_id))


@router.get("/jobs/{job_id}/log", tags=["jobs"])
def job_log(
    job_id: JobId, access: AccessDep, lines: Annotated[int, Query(ge=1, le=1000)] = 50
) -> dict[str, Any]:
    """The tail of a job's training log."""
    job = access.job(job_id)
    return {"id": job_id, "log": views.log_tail(job, lines)}


@router.get("/jobs/{job_id}/run", tags=["jobs"])
def job_run(job_id: JobId, registry: RegistryDep, access: AccessDep) -> dict[str, Any]:
    """A job's run page: wall and step time, samples/s, per-task test metrics, the kept
    checkpoint and each task's best dev step, majority-class baselines, and per
    classification task the confusion matrix, per-class P / R / F1 and the worst
    misclassified test examples."""
    from . import runs

    return runs.run_view(registry, access.job(job_id))


@router.post("/jobs/{job_id}/cancel", tags=["jobs"])
def cancel_job(job_id: JobId, registry: RegistryDep, access: AccessDep) -> dict[str, Any]:
    """Cancel a queued job, or ask a running one to stop (only its owner)."""
    access.job(job_id)
    return views.job_row(registry, registry.request_cancel(job_id))


@router.post("/jobs/{job_id}/retry", tags=["jobs"])
def retry_job(job_id: JobId, registry: RegistryDep, access: AccessDep) -> dict[str, Any]:
    """Queue a failed or cancelled job again (only its owner)."""
    access.job(job_id)
    return views.job_row(registry, registry.retry(job_id))


# --- sweeps ----------------------------------------------------------------------------


@router.post("/sweeps", status_code=status.HTTP_201_CREATED, tags=["sweeps"])
def create_sweep(spec: SweepSpec, registry: RegistryDep, access: AccessDep) -> dict[str, Any]:
    """Validate every combination of the grid, then queue them all as one sweep of jobs
    (owned by the caller); nothing is written when any combination is invalid."""
    spec = _as_caller(SweepSpec, spec.to_json_dict(), access)
    sweep_id = registry.create_sweep(spec)
    return views.sweep_detail(registry.get_sweep(sweep_id))


@router.get("/sweeps", tags=["sweeps"])
def list_sweeps(
    access: AccessDep, owner: str | None = None, limit: Annotated[int, Query(ge=1, le=500)] = 100
) -> list[dict[str, Any]]:
    """Sweeps, newest first, with how many of their jobs are in each status."""
    return [views.sweep_summary(s) for s in access.sweeps(owner=owner, limit=limit)]


@router.get("/sweeps/{sweep_id}", tags=["sweeps"])
def get_sweep(sweep_id: SweepId, access: AccessDep) -> dict[str, Any]:
    """A sweep: its grid, base spec, jobs, and each (job, task)'s metrics and stored bytes."""
    return views.sweep_detail(access.sweep(sweep_id))


# --- catalog ---------------------------------------------------------------------------


@router.get("/tasks", tags=["catalog"])
def list_tasks(access: AccessDep) -> list[dict[str, Any]]:
    """Catalog tasks, plus the tasks of the caller's trained prototypes. A task trained from
    an upload is described by the caller's own run of it (`views.run_task_info`): two users'
    uploads may share a name, never their labels, metrics or sizes."""
    from propetl.data import list_tasks as catalog

    out = {t.name: {**t.to_dict(), "trained": False} for t in catalog()}
    for proto in access.prototypes():
        for mask_set in proto.mask_sets:
            name, info = mask_set.task.name, views.run_task_info(mask_set)
            out.setdefault(
                name,
                {
                    "name": name,
                    "source": info.get("source", "file"),
                    "label_names": info.get("label_names"),
                    "metrics": info.get("metrics") or [],
                    "main_metric": info.get("main_metric") or "",
                    "sizes": info.get("sizes"),
                },
            )
            out[name]["trained"] = True
    return list(out.values())


@router.get("/tasks/{name}/card", tags=["catalog"])
def task_card(
    name: str,
    access: AccessDep,
    backbone: str = "minilm-l6",
    max_length: Annotated[int, Query(ge=1, le=8192)] = 128,
) -> dict[str, Any]:
    """A task's dataset card (a catalog task, or one of the caller's uploads by its file
    name): split sizes, class balance and majority baseline, token lengths for `backbone`
    with the share cut at `max_length`, duplicates, and a content hash. A backbone folder
    outside `PROPETL_BACKBONE_DIRS` is refused (422) as in a job spec, without being read."""
    from .datacards import BackboneRefused
    from .datacards import task_card as card

    try:
        return card(access, name, backbone, max_length)
    except BackboneRefused as err:  # the job spec's words, whether the folder exists or not
        raise RequestValidationError(
            [
                {
                    "type": "spec_error",
                    "loc": ("query", "backbone"),
                    "msg": str(err),
                    "input": backbone,
                }
            ]
        ) from None
    except OSError:  # its text may name server paths (a file, the hub cache)
        raise NotFoundError(
            f"no task {name!r}: a file it needs cannot be read on the server"
        ) from None
    except ValueError as err:
        raise NotFoundError(f"no task {name!r}: {err}") from None


#: Route options of a route that takes a file (`app.uploads.MAX_UPLOAD_BYTES` at most).
TAKES_FILE: dict[str, Any] = {
    "responses": {
        413: {
            "model": Problem,
            "description": "the file is above the upload limit (nothing is kept)",
        }
    }
}


@router.post("/uploads", status_code=status.HTTP_201_CREATED, tags=["catalog"], **TAKES_FILE)
def create_upload(file: UploadFile, access: AccessDep) -> dict[str, Any]:
    """Upload a CSV / TSV / JSONL task file (checked whole; every problem reported at once).
    A job names it by the returned `name` in its `tasks`; it is the caller's alone (a file
    whose content the caller uploaded before returns that upload's `name`)."""
    import tempfile
    from pathlib import Path

    from propetl.data import load_user_file, validate_user_file

    from .uploads import DATA_SUFFIXES, copy_capped, safe_upload_name

    name = safe_upload_name(file.filename or "upload")
    if Path(name).suffix not in DATA_SUFFIXES:
        raise PlaygroundError(f"{name}: unsupported file type; use {', '.join(DATA_SUFFIXES)}")
    with tempfile.TemporaryDirectory() as tmp:
        source = copy_capped(file.file, Path(tmp) / name)
        problems = validate_user_file(source)
        if problems:
            raise PlaygroundError(f"{name}: " + "; ".join(problems))
        from . import uploads

        target = uploads.store(access.owner, source, access.registry.settings)
    info = load_user_file(target).info
    return {
        "name": target.name,
        "task": uploads.task_name(target.name),
        "label_names": info.label_names,
        "sizes": info.sizes,
    }


@router.get("/uploads", tags=["catalog"])
def list_uploads(access: AccessDep) -> list[dict[str, Any]]:
    """The caller's uploaded task files: `name` (what a job's `tasks` names) and `task`."""
    from .uploads import task_name

    return [
        {"name": p.name, "task": task_name(p.name), "bytes": p.stat().st_size}
        for p in access.uploads()
    ]


@router.get("/backbones", tags=["catalog"])
def list_backbones(user: UserDep) -> list[dict[str, Any]]:
    """Backbones known offline (any hub name or local folder also works)."""
    from propetl.backbones import known_backbones

    return [
        {"name": b.name, "source": b.source, "description": b.description}
        for b in known_backbones()
    ]


# --- prototypes and masks --------------------------------------------------------------


@router.get("/prototypes", tags=["prototypes"])
def list_prototypes(access: AccessDep, backbone: str | None = None) -> list[dict[str, Any]]:
    """Trained prototypes, newest first (with login on, those of the caller's jobs)."""
    return [views.prototype_summary(p) for p in access.prototypes(backbone=backbone)]


@router.get("/prototypes/{uid}", tags=["prototypes"])
def get_prototype(uid: str, access: AccessDep) -> dict[str, Any]:
    """A prototype (its id or a unique prefix of it) with its storage report and every
    task's masks."""
    return views.prototype_detail(access.prototype(uid))


def _zip_reply(path: pathlib.Path) -> StreamingResponse:
    """The zip at `path`, sent from a handle opened now: a concurrent request that rebuilds
    the same file (an atomic replace) changes nothing in what this one sends."""
    handle = path.open("rb")
    size = os.fstat(handle.fileno()).st_size

    def chunks() -> Iterator[bytes]:
        with handle:
            while chunk := handle.read(1 << 20):
                yield chunk

    return StreamingResponse(
        chunks(),
        media_type="application/zip",
        headers={
            "Content-Length": str(size),
            "Content-Disposition": f"attachment; filename*=utf-8''{quote(path.name)}",
        },
    )


ZIP = file_reply("application/zip", "a zip")


@router.get("/prototypes/{uid}/download", tags=["prototypes"], **ZIP)
def download_prototype(uid: str, access: AccessDep) -> StreamingResponse:
    """The whole bundle (config, prototype, all tasks) as a zip."""
    return _zip_reply(bundles.bundle_zip(access.prototype(uid)))


@router.get("/prototypes/{uid}/masks", tags=["masks"])
def list_masks(uid: str, access: AccessDep) -> list[dict[str, Any]]:
    """Each task's masks over this prototype: bits, bytes on disk, density, metrics."""
    return [views.mask_set_summary(m) for m in access.prototype(uid).mask_sets]


@router.get("/prototypes/{uid}/masks/{task}/download", tags=["masks"], **ZIP)
def download_masks(uid: str, task: str, access: AccessDep) -> StreamingResponse:
    """One task as a zip of a complete model folder: the shared prototype, the task's masks
    and head, and a config listing only that task (the same as `export?format=propetl`)."""
    proto, _ = access.mask_set(uid, task)
    return _zip_reply(bundles.task_zip(proto, task))


@router.get("/prototypes/{uid}/masks/{task}/export", tags=["masks"], **ZIP)
def export_masks(
    uid: str,
    task: str,
    access: AccessDep,
    format_: Annotated[Literal["propetl", "peft", "merged"], Query(alias="format")] = "propetl",
) -> StreamingResponse:
    """One task as a zip: `propetl` (a model folder of that task alone: prototype, masks,
    head and config; loads with `propetl predict --model`), `peft` (a PEFT LoRA adapter
    folder) or `merged` (a plain HF model folder). PEFT and merged exports hold only LoRA
    tasks: classifiers with first-token heads, or generative tasks (a seq2seq / causal LM);
    others are refused with 422 and the reason."""
    proto, _ = access.mask_set(uid, task)
    return _zip_reply(exports.export_zip(proto, task, format_))


@router.delete(
    "/prototypes/{uid}/masks/{task}", status_code=status.HTTP_204_NO_CONTENT, tags=["masks"]
)
def delete_masks(
    uid: str, task: str, registry: RegistryDep, engine: EngineDep, access: AccessDep
) -> Response:
    """Delete a task's masks from a prototype (only the owner of the job that made it)."""
    proto, mask_set = access.mask_set(uid, task)
    registry.delete_mask_set(mask_set.id)
    engine.forget(proto.uid)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- predict ---------------------------------------------------------------------------


class PredictItem(BaseModel):
    task: str
    text: str = Field(min_length=1)
    text_pair: str | None = None


class PredictRequest(BaseModel):
    """Either one `text` for `task` ("all tasks" for every task), or `items` that each name
    their task (answered as one mixed batch)."""

    prototype: str
    task: str | None = None
    text: str | None = None
    text_pair: str | None = None
    items: list[PredictItem] | None = None


def _submit_predict(
    body: PredictRequest, engine: PlaygroundEngine, access: Access
) -> tuple[str, Pending]:
    # a light check on every request (the engine keeps recent registry answers)
    uid = access.prototype_uid(body.prototype, owner_of=engine.prototype_owner)
    if body.items:
        return uid, engine.submit_mixed(uid, [(i.task, i.text, i.text_pair) for i in body.items])
    if not body.task or body.text is None:
        raise PlaygroundError("give 'task' and 'text', or a list of 'items'")
    task = ALL_TASKS if body.task in ("all", ALL_TASKS) else body.task
    return uid, engine.submit(uid, task, body.text, body.text_pair)


@router.post("/predict", tags=["predict"], responses={503: ERRORS[503]})
async def predict(body: PredictRequest, engine: EngineDep, access: AccessDep) -> dict[str, Any]:
    """Labels and probabilities; the prototype (its id or a unique prefix) stays loaded and
    tasks swap masks (with login on, only from prototypes of the caller's jobs)."""
    # The checks (database reads) run on a thread; the wait for the batch holds none, so
    # many waiting clients cost no threads and the batcher sees all of them.
    uid, pending = await run_in_threadpool(_submit_predict, body, engine, access)
    result = pending.finish(await asyncio.wrap_future(pending.future))
    return {
        "prototype": uid,
        "mode": result.mode,
        "results": result.results,
        "timing": {
            "swap_ms": result.swap_ms,
            "inference_ms": result.inference_ms,
            "load_ms": result.load_ms,
            "queue_ms": result.queue_ms,
        },
        # concurrent requests of this prototype are answered as one mixed-task batch
        "batch": {"texts": result.batch_texts, "requests": result.batch_requests},
    }


# --- errors ----------------------------------------------------------------------------

_STATUS: list[tuple[type[Exception], int]] = [
    (AuthError, 401),
    (ForbiddenError, 403),
    (NotFoundError, 404),
    (FileNotFoundError, 404),
    (InvalidStateError, 409),
    (PlaygroundError, 422),
    (exports.ExportError, 422),
    (AmbiguousError, 422),
    (UploadNotFound, 404),
    (UploadTooLarge, 413),
    (TooManyAttempts, 429),
    (ServerBusyError, 503),
]


def login_throttle() -> LoginThrottle:
    """A throttle with the settings' limits."""
    settings = get_settings()
    return LoginThrottle(
        settings.login_max_failures, settings.login_max_failures_per_address, settings.login_window
    )


def install(app: FastAPI, auth: Auth, throttle: LoginThrottle | None = None) -> None:
    """Add the API routes, the login rules and the error mapping to `app`."""
    app.state.auth = auth
    app.state.login_throttle = throttle or login_throttle()
    # their routes join `router`: batch prediction, the tasks of a prototype
    from . import api_labels, api_tasks  # noqa: F401

    app.include_router(public)
    app.include_router(router)
    for exc, code in _STATUS:
        app.add_exception_handler(exc, _handler(code))
    app.add_exception_handler(RequestValidationError, _validation_handler)


async def _validation_handler(request: Request, err: Exception) -> JSONResponse:
    """FastAPI's 422, but never echoing what was sent to the login route (a password)."""
    assert isinstance(err, RequestValidationError)
    if request.url.path.startswith("/api/auth/"):
        errors = [{k: v for k, v in e.items() if k not in ("input", "ctx")} for e in err.errors()]
        return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)
    # the input is echoed: NaN and Infinity (accepted by the JSON parser) are written as
    # text, since JSON cannot hold them
    return JSONResponse({"detail": _finite(jsonable_encoder(err.errors()))}, status_code=422)


def _finite(value: Any) -> Any:
    """`value` with every non-finite float replaced by its name ("NaN", "Infinity")."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _handler(code: int) -> Any:
    async def handle(request: Request, err: Exception) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if code == 401 else None
        if isinstance(err, TooManyAttempts):
            headers = {"Retry-After": str(err.retry_after)}
        if isinstance(err, ServerBusyError):  # the prototype's serving queue is full
            headers = {"Retry-After": retry_after_header(err)}
        message = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        if isinstance(err, OSError) and err.filename:  # never a server path
            message = "a file of this item is missing on the server"
        return JSONResponse({"detail": message}, status_code=code, headers=headers)

    return handle

"""REST routes for the tasks of a prototype: list them in order, add tasks (a job that grows
the prototype), delete one. Mounted on `app.api`'s router; access is `app.access`'s policy
(another user's prototype is "not found")."""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response, status
from pydantic import BaseModel, Field, ValidationError

from . import views
from .access import Access
from .api import EngineDep, RegistryDep, UserDep, _auth, body_errors, router
from .prototype_tasks import task_history
from .specs import JobSpec


def _access(request: Request, registry: Any, user: str) -> Access:
    auth = _auth(request)
    return Access(auth, user if auth.enabled else None, registry)


class AddTasks(BaseModel):
    """Tasks to add onto a prototype and the training options of the job that adds them
    (the backbone and method fields come from the prototype)."""

    tasks: list[str] = Field(
        min_length=1, max_length=64, description="catalog names or the caller's uploads"
    )
    replace: list[str] = Field(
        default_factory=list, max_length=64, description="tasks already on the prototype to retrain"
    )
    name: str = Field("", max_length=200)
    queue: str | None = None
    config: dict[str, Any] = Field(
        default_factory=dict, description="training options: lr, max_steps, epochs, ..."
    )


#: Where this route's body holds what its job spec has elsewhere.
_MOVED = {("config", "tasks"): ("tasks",), ("replace_tasks",): ("replace",)}


def _entry(entry: Any) -> dict[str, Any]:
    out = entry.to_dict()
    out.pop("artifact_path", None)  # a server path
    return out


@router.get("/prototypes/{uid}/tasks", tags=["prototypes"])
def list_prototype_tasks(
    uid: str, request: Request, registry: RegistryDep, user: UserDep
) -> list[dict[str, Any]]:
    """The prototype's tasks in the order they were added, each with the job that trained
    it (id and name), when, its mask bytes and its dev / test metrics."""
    proto = _access(request, registry, user).prototype(uid)
    return [_entry(e) for e in task_history(registry, proto.uid)]


@router.post("/prototypes/{uid}/tasks", status_code=status.HTTP_201_CREATED, tags=["prototypes"])
def add_prototype_tasks(
    uid: str, body: AddTasks, request: Request, registry: RegistryDep, user: UserDep
) -> dict[str, Any]:
    """Queue a job that adds `tasks` onto the prototype: its prototype and tasks stay frozen
    (files byte-identical), only the new tasks' masks and heads train. Method fields in
    `config` that differ from the prototype's, and task names already on it (unless in
    `replace`), are refused with 409 and a message naming them."""
    access = _access(request, registry, user)
    proto = access.prototype(uid)
    data = {
        "name": body.name,
        "queue": body.queue,
        "owner": access.owner,
        "config": {**body.config, "tasks": body.tasks},
        "base_prototype": proto.uid,
        "replace_tasks": body.replace,
    }
    try:
        job_id = registry.submit_job(
            JobSpec.model_validate(data, context={"owner": access.owner}), replace_option="replace"
        )
    except ValidationError as err:  # also the checks on the prototype's backbone
        raise body_errors(err, _MOVED) from None
    return views.job_summary(registry.get_job(job_id))


@router.delete(
    "/prototypes/{uid}/tasks/{task}", status_code=status.HTTP_204_NO_CONTENT, tags=["prototypes"]
)
def delete_prototype_task(
    uid: str, task: str, request: Request, registry: RegistryDep, engine: EngineDep, user: UserDep
) -> Response:
    """Delete one task (its masks and head) from the prototype; the others are untouched."""
    proto, mask_set = _access(request, registry, user).mask_set(uid, task)
    registry.delete_mask_set(mask_set.id)
    engine.forget(proto.uid)
    return Response(status_code=status.HTTP_204_NO_CONTENT)

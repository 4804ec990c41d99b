"""`propetl prototypes`: list a prototype's tasks in order, add tasks onto it (a job), delete
one task."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click


def _registry() -> Any:
    from .registry import get_registry

    return get_registry()


def _errors(func: Any) -> Any:
    from .cli import _product_errors

    return _product_errors(func)


@click.group("prototypes")
def prototypes() -> None:
    """Registered prototypes and their tasks (prototypes grow: jobs add tasks onto them)."""


@prototypes.command("tasks")
@click.argument("uid")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@_errors
def prototype_tasks(uid: str, as_json: bool) -> None:
    """The tasks of prototype UID in the order they were added, with the job of each."""
    from .prototype_tasks import task_history

    registry = _registry()
    uid = _resolve(registry, uid)
    entries = [e.to_dict() for e in task_history(registry, uid)]
    if as_json:
        click.echo(json.dumps(entries, indent=2))
        return
    for e in entries:
        main = e["test_metrics"].get("main")
        click.echo(
            f"{e['position']:>3}  {e['task']:<24} job #{e['job_id'] or '-':<6} "
            f"{e['mask_bytes']:>9,} B  test {main if main is None else f'{main:.4f}'}"
            f"  added {e['added_at'][:19]}"
        )


@prototypes.command("add")
@click.argument("uid")
@click.argument(
    "spec_path", metavar="[SPEC.yaml]", required=False, type=click.Path(exists=True, dir_okay=False)
)
@click.option("--tasks", required=True, help="comma-separated new task names or data files")
@click.option("--replace", "replace", multiple=True, help="retrain this task of the prototype")
@click.option("--max-steps", type=int, default=None)
@click.option("--epochs", type=float, default=None)
@click.option("--name", default=None)
@click.option("--queue", default=None)
@click.option("--owner", default=None)
@_errors
def prototype_add(
    uid: str,
    spec_path: str | None,
    tasks: str,
    replace: tuple[str, ...],
    max_steps: int | None,
    epochs: float | None,
    name: str | None,
    queue: str | None,
    owner: str | None,
) -> None:
    """Queue a job adding --tasks onto prototype UID (training options from SPEC.yaml and the
    flags; the method comes from the prototype); prints the job id."""
    from .specs import JobSpec, load_yaml

    registry = _registry()
    data: dict[str, Any] = {}
    if spec_path:
        data = load_yaml(Path(spec_path).read_text()) or {}
        if not isinstance(data, dict):
            raise click.ClickException(f"{spec_path}: a job spec is a mapping of options")
    config = dict(data.pop("config", None) or {})
    config.update(
        {k: v for k, v in {"max_steps": max_steps, "epochs": epochs}.items() if v is not None}
    )
    config["tasks"] = [t.strip() for t in tasks.split(",") if t.strip()]
    data.update({k: v for k, v in {"queue": queue, "name": name, "owner": owner}.items() if v})
    data.update(config=config, base_prototype=_resolve(registry, uid), replace_tasks=list(replace))
    job_id = registry.submit_job(JobSpec.model_validate(data, context={"paths": True}))
    click.echo(job_id)


@prototypes.command("delete-task")
@click.argument("uid")
@click.argument("task")
@_errors
def prototype_delete_task(uid: str, task: str) -> None:
    """Delete TASK (its masks and head) from prototype UID; the other tasks are untouched."""
    from .registry import NotFoundError

    registry = _registry()
    proto = registry.get_prototype(_resolve(registry, uid))
    found = next((m for m in proto.mask_sets if m.task.name == task), None)
    if found is None:
        raise NotFoundError(f"prototype {proto.uid} has no task {task!r}")
    registry.delete_mask_set(found.id)
    click.echo(f"deleted task {task} from {proto.uid}")


def _resolve(registry: Any, uid: str) -> str:
    """A full uid from a unique prefix of one."""
    from .registry import NotFoundError

    matches = registry.prototype_uids(uid)
    if uid in matches or len(matches) == 1:
        return uid if uid in matches else matches[0]
    if not matches:
        raise NotFoundError(f"no prototype {uid}")
    raise NotFoundError(f"{len(matches)} prototypes start with {uid}; give more of the id")

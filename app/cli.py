"""The `propetl` console script: the method's commands plus the product's (worker, jobs, db)."""

from __future__ import annotations

import functools
import json
import os
import re
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
from pydantic import ValidationError

from propetl.cli import cli, read_yaml_file

from .models import MAX_ID

F = TypeVar("F", bound=Callable[..., Any])


def _product_errors(func: F) -> F:
    """Show registry and spec errors as one clean message, without a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from alembic.util.exc import CommandError
        from sqlalchemy.exc import SQLAlchemyError

        from .registry import InvalidStateError, NotFoundError
        from .specs import describe_errors

        try:
            return func(*args, **kwargs)
        except ValidationError as err:
            raise click.ClickException("invalid job spec:\n" + describe_errors(err)) from err
        except (NotFoundError, InvalidStateError, OSError, CommandError) as err:
            raise click.ClickException(str(err)) from err
        except SQLAlchemyError as err:
            raise click.ClickException(_database_error(err)) from err

    return wrapper  # type: ignore[return-value]


def _database_error(err: Exception) -> str:
    """One line for a registry database that cannot be used: the URL without its password
    and the driver's first line (never the password, whatever the driver wrote)."""
    from .settings import get_settings, mask_url

    url = get_settings().database_url
    cause = getattr(err, "orig", None) or err
    first = (str(cause).strip().splitlines() or [""])[0]
    password = re.search(r"://[^:/@]*:([^@]*)@", url or "")
    if password and password.group(1):
        first = first.replace(password.group(1), "***")
    return (
        f"the registry database {mask_url(url)} cannot be used: {cause.__class__.__name__}: {first}"
    )


#: A job or sweep id: SQLite and PostgreSQL hold 64-bit signed integers.
JOB_ID = click.IntRange(1, MAX_ID)


def _read_spec(spec_path: str | None) -> Any:
    """A spec file's content ({} without one)."""
    return read_yaml_file(spec_path) if spec_path else {}


def _registry() -> Any:
    from .registry import get_registry

    return get_registry()


# --- worker ----------------------------------------------------------------------------


@cli.command()
@click.option(
    "--queue",
    "-Q",
    "queues",
    multiple=True,
    help="queue(s) to consume (default: PROPETL_DEFAULT_QUEUE)",
)
@click.option(
    "--concurrency",
    "-c",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="jobs at once (one per GPU)",
)
@click.option(
    "--pool",
    type=click.Choice(["solo", "prefork", "threads"]),
    default=None,
    help="Celery pool (default: solo for one job at a time, else prefork)",
)
@click.option("--loglevel", "-l", default="info", show_default=True)
@click.option("--name", "-n", default=None, help="node name (default: propetl-<pid>@<host>)")
def worker(
    queues: tuple[str, ...], concurrency: int, pool: str | None, loglevel: str, name: str | None
) -> None:
    """Start a worker process that runs jobs from the queue (Celery's own command line)."""
    from .settings import get_settings

    queue = ",".join(queues) or get_settings().default_queue
    pool = pool or ("solo" if concurrency == 1 else "prefork")
    argv = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "worker.celery_app",
        "worker",
        "-Q",
        queue,
        "-c",
        str(concurrency),
        "--pool",
        pool,
        "-l",
        loglevel,
        "-n",
        name or f"propetl-{os.getpid()}@%h",
    ]
    click.echo(" ".join(argv[1:]), err=True)
    os.execvp(argv[0], argv)


# --- jobs ------------------------------------------------------------------------------


@cli.group()
def jobs() -> None:
    """Submit and manage training jobs in the registry."""


@jobs.command("submit")
@click.argument("spec_path", metavar="SPEC.yaml", type=click.Path(exists=True, dir_okay=False))
@click.option("--queue", default=None, help="override the spec's queue")
@click.option("--name", default=None, help="override the spec's name")
@click.option("--owner", default=None, help="override the spec's owner")
@_product_errors
def jobs_submit(spec_path: str, queue: str | None, name: str | None, owner: str | None) -> None:
    """Validate a job spec (YAML) and queue it; prints the job id."""
    from .specs import JobSpec, names_tasks, no_tasks_error

    data = _read_spec(spec_path)
    if data is not None and not isinstance(data, dict):
        raise click.ClickException(f"{spec_path}: a job spec is a mapping of options")
    data = data or {}
    if not names_tasks(data):  # an empty spec is not the default job
        raise no_tasks_error()
    data.update({k: v for k, v in {"queue": queue, "name": name, "owner": owner}.items() if v})
    # the machine's owner runs the CLI: tasks and backbones may name server paths
    job_id = _registry().submit_job(JobSpec.model_validate(data, context={"paths": True}))
    click.echo(job_id)


@jobs.command("sweep")
@click.argument(
    "spec_path", metavar="SPEC.yaml", required=False, type=click.Path(exists=True, dir_okay=False)
)
@click.option(
    "--grid",
    "-g",
    "grid_options",
    multiple=True,
    metavar="FIELD=V1,V2,...",
    help="a swept field and its values, e.g. keep=0.05,0.1,0.3 or petl=adapter,lora "
    "(repeat for a product)",
)
@click.option("--name", default=None, help="the sweep's name (its jobs are named after it)")
@click.option("--queue", default=None, help="override the base spec's queue")
@click.option("--owner", default=None, help="owner of the sweep and its jobs")
@_product_errors
def jobs_sweep(
    spec_path: str | None,
    grid_options: tuple[str, ...],
    name: str | None,
    queue: str | None,
    owner: str | None,
) -> None:
    """Queue a grid of jobs as one sweep; prints the sweep id and its job ids.

    SPEC.yaml is either a job spec (the base, swept with --grid) or a sweep file with `base:`
    and `grid:` (and optional `name:`); --grid options add to or replace its grid.
    """
    from .sweeps import SweepSpec, parse_grid_option

    data = _read_spec(spec_path)
    if not isinstance(data, dict):
        raise click.ClickException(f"{spec_path}: a spec is a mapping of options")
    if "grid" not in data and "base" not in data:
        data = {"base": data}
    data["grid"] = dict(data.get("grid") or {})
    for option in grid_options:
        try:
            key, values = parse_grid_option(option)
        except ValueError as err:
            raise click.BadParameter(str(err), param_hint="--grid") from err
        data["grid"][key] = values
    data["base"] = dict(data.get("base") or {})
    if queue:
        data["base"]["queue"] = queue
    data.update({k: v for k, v in {"name": name, "owner": owner}.items() if v})
    registry = _registry()
    sweep_id = registry.create_sweep(SweepSpec.model_validate(data, context={"paths": True}))
    sweep = registry.get_sweep(sweep_id)
    click.echo(
        f"sweep {sweep_id}: {len(sweep.jobs)} jobs queued "
        f"({', '.join(str(j.id) for j in sweep.jobs)})"
    )


def _job_row(job: Any) -> dict[str, Any]:
    return {
        "id": job.id,
        "name": job.name,
        "owner": job.owner,
        "status": job.status,
        "progress": round(job.progress, 3),
        "step": job.step,
        "total_steps": job.total_steps,
        "queue": job.queue,
        "attempts": job.attempts,
        "worker": job.worker_host,
        "sweep": job.sweep_id,
        "created_at": job.created_at.isoformat() if job.created_at else None,
    }


@jobs.command("list")
@click.option(
    "--status",
    type=click.Choice(["queued", "running", "succeeded", "failed", "cancelled"]),
    default=None,
)
@click.option("--owner", default=None)
@click.option("--sweep", "sweep_id", type=JOB_ID, default=None, help="only this sweep's jobs")
@click.option("--limit", type=click.IntRange(1, MAX_ID), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@_product_errors
def jobs_list(
    status: str | None, owner: str | None, sweep_id: int | None, limit: int, as_json: bool
) -> None:
    """List jobs, newest first."""
    rows = [
        _job_row(j)
        for j in _registry().list_jobs(status=status, owner=owner, sweep_id=sweep_id, limit=limit)
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(f"{'id':>5}  {'status':<10} {'progress':>8}  {'queue':<12} {'owner':<10} name")
    for r in rows:
        click.echo(
            f"{r['id']:>5}  {r['status']:<10} {r['progress']:>8.0%}  {r['queue']:<12} "
            f"{r['owner']:<10} {r['name']}"
        )


@jobs.command("show")
@click.argument("job_id", type=JOB_ID)
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@_product_errors
def jobs_show(job_id: int, as_json: bool) -> None:
    """Show one job: status, spec, latest metrics and its registered prototype."""
    registry = _registry()
    job = registry.get_job(job_id)
    info = _job_row(job) | {
        "error": job.error,
        "cancel_requested": job.cancel_requested,
        "run_dir": job.run_dir,
        "spec": job.spec,
        "prototype": job.prototype.uid if job.prototype else None,
    }
    latest = {
        f"{split}/{task or 'all'}/{name}": points[-1][1]
        for (task, split, name), points in registry.metric_series(job_id).items()
    }
    info["latest_metrics"] = latest
    if as_json:
        click.echo(json.dumps(info, indent=2, default=str))
        return
    for key, value in info.items():
        if key not in ("spec", "latest_metrics"):
            click.echo(f"{key:>16}: {value}")
    for key, value in sorted(latest.items()):
        click.echo(f"{key:>40} = {value:.4g}")


@jobs.command("cancel")
@click.argument("job_id", type=JOB_ID)
@_product_errors
def jobs_cancel(job_id: int) -> None:
    """Cancel a queued job, or ask a running one to checkpoint and stop."""
    job = _registry().request_cancel(job_id)
    click.echo(f"job {job_id}: {'cancel requested' if job.status == 'running' else job.status}")


@jobs.command("retry")
@click.argument("job_id", type=JOB_ID)
@_product_errors
def jobs_retry(job_id: int) -> None:
    """Queue a failed or cancelled job again (it resumes from its last checkpoint)."""
    job = _registry().retry(job_id)
    click.echo(f"job {job_id}: {job.status}")


@jobs.command("reap")
@click.option(
    "--timeout",
    type=float,
    default=None,
    help="seconds without heartbeat (default: PROPETL_REAPER_TIMEOUT)",
)
@_product_errors
def jobs_reap(timeout: float | None) -> None:
    """Re-queue or fail running jobs whose worker stopped heartbeating."""
    from .queue import active_task_ids

    actions = _registry().reap_stale_jobs(timeout, active=active_task_ids)
    for job_id, action in actions:
        click.echo(f"job {job_id}: {action}")
    if not actions:
        click.echo("no stale jobs")


# --- db --------------------------------------------------------------------------------


@cli.group("db")
def db_group() -> None:
    """Registry schema migrations (Alembic)."""


@db_group.command("upgrade")
@click.argument("revision", default="head")
@_product_errors
def db_upgrade(revision: str) -> None:
    """Migrate the registry up to REVISION (default: head)."""
    from . import db

    db.upgrade(revision=revision)
    click.echo(f"at {db.current_revision()}")


@db_group.command("downgrade")
@click.argument("revision", default="-1")
@_product_errors
def db_downgrade(revision: str) -> None:
    """Migrate the registry down to REVISION (default: one step; "base" drops everything)."""
    from . import db

    db.downgrade(revision=revision)
    click.echo(f"at {db.current_revision()}")


@db_group.command("current")
@_product_errors
def db_current() -> None:
    """Print the registry's revision and the newest one shipped."""
    from . import db
    from .settings import get_settings, mask_url

    click.echo(f"database: {mask_url(get_settings().database_url)}")
    click.echo(f"current: {db.current_revision()}  head: {db.head_revision()}")


# imported last: these modules import `cli` from here
from app.cli_prototypes import prototypes  # noqa: E402
from app.server import serve  # noqa: E402

cli.add_command(serve)
cli.add_command(prototypes)


def main() -> None:
    from propetl.cli import main as method_main

    method_main()  # the method's entry point (datasets progress bars off), product included


if __name__ == "__main__":
    main()

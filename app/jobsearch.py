"""Finding jobs and taking their figures away: a search over names, tasks, owners, tags and
notes (with `status:`, `task:`, `owner:`, `tag:` and `sweep:` terms), and a job's metrics as
CSV."""

from __future__ import annotations

from collections.abc import Iterable

from propetl.csvout import to_csv

from .models import Job
from .registry import Registry
from .uploads import task_name

FIELDS = ("status", "task", "owner", "tag", "sweep")


def _haystack(job: Job) -> str:
    config = job.spec.get("config", {}) if isinstance(job.spec, dict) else {}
    tasks = " ".join(task_name(t) for t in config.get("tasks", []))
    return " ".join(
        [
            str(job.id),
            job.name or "",
            tasks,
            job.owner or "",
            job.status,
            " ".join(job.tags or []),
            job.note or "",
            str(config.get("backbone", "")),
        ]
    ).lower()


def matches(job: Job, query: str) -> bool:
    """Whether every term of `query` fits the job: `field:value` terms (status, task, owner,
    tag, sweep) must match that field; other words must appear somewhere."""
    config = job.spec.get("config", {}) if isinstance(job.spec, dict) else {}
    text = _haystack(job)
    for term in (query or "").lower().split():
        field, _, value = term.partition(":")
        if value and field in FIELDS:
            if field == "status" and job.status != value:
                return False
            if field == "task" and value not in [
                task_name(t).lower() for t in config.get("tasks", [])
            ]:
                return False
            if field == "owner" and (job.owner or "").lower() != value:
                return False
            if field == "tag" and value not in [t.lower() for t in job.tags or []]:
                return False
            if field == "sweep" and str(job.sweep_id or "") != value.lstrip("#"):
                return False
        elif term not in text:
            return False
    return True


def search(jobs: Iterable[Job], query: str) -> list[Job]:
    return [j for j in jobs if matches(j, query)]


def metrics_csv(registry: Registry, job: Job) -> str:
    """Every recorded metric point of a job: job, step, split, task, metric, value."""
    series = registry.metric_series(job.id)
    rows = [
        (job.id, step, split, task, name, float(value))
        for (task, split, name), points in sorted(series.items())
        for step, value in points
    ]
    return to_csv(("job", "step", "split", "task", "metric", "value"), rows)

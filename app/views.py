"""Plain, JSON-able views of registry rows, shared by the REST API and the dashboard."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .models import Job, MaskSet, Prototype, Sweep
from .registry import Registry
from .sweeps import label, value_at
from .uploads import task_name

Series = dict[tuple[str, str, str], list[tuple[int, float]]]


def age(when: datetime | None, now: datetime | None = None) -> str:
    """'12 s ago', '3 min ago', '5 h ago', '2 d ago' (or '' for no time)."""
    if when is None:
        return ""
    seconds = max(0.0, ((now or datetime.now(timezone.utc)) - when).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return f"{int(seconds)} s ago"


def _iso(when: datetime | None) -> str | None:
    return when.isoformat() if when else None


def waiting_text(job: Job, now: datetime | None = None) -> str:
    """For a queued job: how long it has waited, on which queue, and when it was last sent
    there (the reaper sends a job that waited too long again)."""
    now = now or datetime.now(timezone.utc)
    waited = age(job.created_at, now).removesuffix(" ago")
    text = f"waiting {waited} on queue {job.queue}"
    if (
        job.heartbeat_at is not None
        and job.created_at is not None
        and (job.heartbeat_at - job.created_at).total_seconds() > 1
    ):
        text += f" · last sent {age(job.heartbeat_at, now)}"
    return text


def job_row(registry: Registry, job: Job) -> dict[str, Any]:
    """`job_summary` with its best dev metric (the one figure the job list, the job detail
    and the dashboard's table show): what every interface returns for a job."""
    return job_rows(registry, [job])[0]


def job_rows(registry: Registry, jobs: list[Job]) -> list[dict[str, Any]]:
    """`job_row` of each job, their best metrics read in one query."""
    best = registry.best_dev_metrics(j.id for j in jobs)
    return [job_summary(j, best.get(j.id)) for j in jobs]


def job_summary(job: Job, best: float | None = None) -> dict[str, Any]:
    """The fields a job list shows."""
    config = job.spec.get("config", {})
    return {
        "id": job.id,
        "name": job.name,
        "owner": job.owner,
        "sweep_id": job.sweep_id,
        "status": job.status,
        "progress": round(float(job.progress or 0.0), 4),
        "step": job.step,
        "total_steps": job.total_steps,
        "phase": job.phase,
        "tasks": [task_name(t) for t in config.get("tasks", [])],
        "backbone": config.get("backbone"),
        "queue": job.queue,
        "attempts": job.attempts,
        "best_metric": best,
        "cancel_requested": job.cancel_requested,
        "created_at": _iso(job.created_at),
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
        "eta_seconds": job.eta_seconds,
        "error": job.error,
        "tags": list(job.tags or []),
        "note": job.note or "",
        "waiting": waiting_text(job) if job.status == "queued" else None,
    }


def job_detail(registry: Registry, job: Job) -> dict[str, Any]:
    """A job with its spec, curves and registered prototype."""
    series = registry.metric_series(job.id)
    proto = registry.prototype_for_job(job.id) if job.status == "succeeded" else None
    out = job_row(registry, job)
    out.update(
        spec=job.spec,
        prototype=proto.uid if proto else None,
        metrics=[
            {"task": t, "split": s, "name": n, "points": [list(p) for p in pts]}
            for (t, s, n), pts in series.items()
        ],
    )
    return out


def task_bytes(mask_set: MaskSet) -> int:
    """Bytes of a task's folder on disk (masks + head + labels)."""
    folder = Path(mask_set.artifact_path)
    if not folder.is_dir():
        return 0
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def run_task_info(mask_set: MaskSet) -> dict[str, Any]:
    """The task as the run that trained these masks read it: the mask set's own record, or
    (registered before it was kept) the labels its task folder's task.json holds. Never the
    shared `Task` row: another user's upload may have the same name."""
    if mask_set.task_info is not None:
        return dict(mask_set.task_info)
    try:
        saved = json.loads((Path(mask_set.artifact_path) / "task.json").read_text()).get("task")
    except (OSError, ValueError, AttributeError):
        saved = None
    labels = saved.get("label_names") if isinstance(saved, dict) else None
    return {"label_names": list(labels) if isinstance(labels, list) else None}


def mask_set_summary(mask_set: MaskSet) -> dict[str, Any]:
    return {
        "id": mask_set.id,
        "task": mask_set.task.name,
        "keep_ratio": mask_set.keep_ratio,
        "mask_bits": mask_set.mask_bits,
        "mask_bytes": mask_set.mask_bytes,
        "disk_bytes": task_bytes(mask_set),
        "density": list(mask_set.density or []),
        "dev_metrics": dict(mask_set.dev_metrics or {}),
        "test_metrics": dict(mask_set.test_metrics or {}),
        "label_names": run_task_info(mask_set).get("label_names"),
    }


def current_storage(proto: Prototype) -> dict[str, Any]:
    """The prototype's storage report for the tasks it has now. The stored report counts
    the tasks of the job that made it; tasks are added and deleted since: the totals are
    recounted (ProPETL grows by `per_task_fp32_eq` a task, the ordinary modules by their
    share), and with no task left there is nothing to compare (ratio None)."""
    storage = dict(proto.storage or {})
    tasks = [m.task.name for m in proto.mask_sets]
    try:
        before, per_task = int(storage["num_tasks"]), float(storage["per_task_fp32_eq"])
        total = float(storage["propetl_fp32_eq"]) + (len(tasks) - before) * per_task
        baseline = float(storage["baseline_fp32_eq"]) / before * len(tasks)
        backbone = float(storage["backbone_params"])
    except (KeyError, TypeError, ValueError, ZeroDivisionError):  # not a storage report
        return storage
    storage.update(
        num_tasks=len(tasks),
        propetl_fp32_eq=total,
        baseline_fp32_eq=baseline,
        ratio_to_baseline=total / baseline if baseline else None,
        percent_of_backbone=100 * total / backbone if backbone else None,
        baseline_percent_of_backbone=100 * baseline / backbone if backbone else None,
        head_params_per_task={
            t: n for t, n in (storage.get("head_params_per_task") or {}).items() if t in tasks
        },
        disk_bytes={
            k: n
            for k, n in (storage.get("disk_bytes") or {}).items()
            if not k.startswith("task:") or k.split(":")[1] in tasks
        },
    )
    return storage


def prototype_summary(proto: Prototype) -> dict[str, Any]:
    storage = current_storage(proto)
    return {
        "uid": proto.uid,
        "backbone": proto.backbone.name,
        "job_id": proto.job_id,
        "petl": proto.petl_kind,
        "sharing": proto.sharing,
        "keep": (proto.config or {}).get("keep"),
        "prototype_params": proto.prototype_params,
        "backbone_params": proto.backbone_params,
        "ratio_to_baseline": storage.get("ratio_to_baseline"),
        "tasks": [m.task.name for m in proto.mask_sets],
        "created_at": _iso(proto.created_at),
    }


def prototype_detail(proto: Prototype) -> dict[str, Any]:
    out = prototype_summary(proto)
    out.update(
        config=proto.config,
        storage=current_storage(proto),
        mask_sets=[mask_set_summary(m) for m in proto.mask_sets],
    )
    return out


def _log_line(event: dict[str, Any]) -> str:
    step = f"step {event.get('step')}/{event.get('total_steps')}"
    phase = event.get("phase")
    if phase == "train":
        loss = event.get("loss")
        return f"{step}  train  loss {loss:.4f}" if isinstance(loss, float) else f"{step}  train"
    parts = [
        f"{task}: " + ", ".join(f"{k} {v:.3f}" for k, v in values.items() if k != "main")
        for task, values in (event.get("metrics") or {}).items()
    ]
    return f"{step}  {phase}  " + " | ".join(parts)


def log_tail(job: Job, lines: int = 30, newest_first: bool = False) -> str:
    """The last training events of a job, readable, and its error if it failed (with
    `newest_first`, the error and the latest event come first)."""
    out: list[str] = []
    path = Path(job.run_dir or "") / "metrics.jsonl"
    if job.run_dir and path.is_file():
        for raw in path.read_text().splitlines()[-lines:]:
            try:
                line = _log_line(json.loads(raw))
            except (ValueError, TypeError, AttributeError):
                continue
            if not out or out[-1] != line:  # an evaluation may be reported twice
                out.append(line)
    if newest_first:
        head = ["ERROR:", job.error, ""] if job.error else []
        return "\n".join(head + out[::-1])
    if job.error:
        out += ["", "ERROR:", job.error]
    return "\n".join(out)


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}; lists become compact JSON text."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = json.dumps(value) if isinstance(value, (list, tuple, dict)) else value
    return out


def config_diff(configs: dict[str, dict[str, Any]], only_differences: bool) -> list[list[Any]]:
    """Rows [option, value in run 1, value in run 2, ...] of several runs' configs."""
    flat = {label: flatten(config) for label, config in configs.items()}
    keys = sorted({k for values in flat.values() for k in values})
    rows = []
    for key in keys:
        values = [flat[label].get(key) for label in flat]
        if only_differences and len({json.dumps(v, default=str) for v in values}) == 1:
            continue
        rows.append([key, *("" if v is None else v for v in values)])
    return rows


# --- sweeps ----------------------------------------------------------------------------


def _main_metric(metrics: dict[str, Any]) -> float | None:
    value = metrics.get("main")
    return float(value) if isinstance(value, (int, float)) else None


def sweep_rows(sweep: Sweep) -> list[dict[str, Any]]:
    """One row per (job, task): the swept values, status, dev / test main metric, bytes.

    `stored_bytes` is the task's mask file on disk (what one more task costs; for an
    ordinary `none` job, its own module), `shared_bytes` the prototype's fp32 weights.
    """
    rows: list[dict[str, Any]] = []
    for job in sweep.jobs:
        config = job.spec.get("config", {})
        values = {path: value_at(config, path) for path in sweep.grid}
        base = {
            "job_id": job.id,
            "status": job.status,
            "values": values,
            "label": label(values),
            "petl": value_at(config, "propetl.petl"),
            "sharing": value_at(config, "propetl.sharing"),
        }
        proto = job.prototype
        if proto is None:
            rows += [
                {
                    **base,
                    "task": task,
                    "dev": None,
                    "test": None,
                    "stored_bytes": None,
                    "shared_bytes": None,
                }
                for task in map(task_name, config.get("tasks", []))
            ]
            continue
        shared = ((proto.storage or {}).get("disk_bytes") or {}).get("prototype")
        for mask_set in proto.mask_sets:
            rows.append(
                {
                    **base,
                    "task": mask_set.task.name,
                    "dev": _main_metric(mask_set.dev_metrics or {}),
                    "test": _main_metric(mask_set.test_metrics or {}),
                    "stored_bytes": mask_set.mask_bytes or None,
                    "shared_bytes": shared,
                }
            )
    return rows


def sweep_summary(sweep: Sweep) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for job in sweep.jobs:
        counts[job.status] = counts.get(job.status, 0) + 1
    return {
        "id": sweep.id,
        "name": sweep.name,
        "owner": sweep.owner,
        "grid": sweep.grid,
        "jobs": len(sweep.jobs),
        "statuses": counts,
        "created_at": _iso(sweep.created_at),
    }


def sweep_detail(sweep: Sweep) -> dict[str, Any]:
    """A sweep with its base spec, its jobs and the results of each (job, task)."""
    out = sweep_summary(sweep)
    out.update(
        base_spec=sweep.base_spec, job_ids=[j.id for j in sweep.jobs], results=sweep_rows(sweep)
    )
    return out


#: Reference points measured by `bench/accuracy.py` (bundled backbone, one task).
REFERENCE_FILE = Path(__file__).resolve().parent.parent / "bench" / "results" / "accuracy.json"
REFERENCE_TASK = "rotten_tomatoes"
REFERENCE_NAMES = {
    "none_adapter": "ordinary adapter",
    "none_lora": "ordinary LoRA",
    "none_prefix": "ordinary prefix",
    "peft_lora_r8": "PEFT LoRA r8",
    "peft_lora_r32": "PEFT LoRA r32",
}


#: PEFT methods and the head-only floor measured by `bench/pareto.py` (mean over seeds).
PARETO_FILE = REFERENCE_FILE.parent / "pareto.json"
PEFT_NAMES = {
    "lora": "LoRA",
    "ia3": "IA3",
    "vera": "VeRA",
    "fourierft": "FourierFT",
    "ln_tuning": "LN tuning",
    "vblora": "VB-LoRA",
    "tinylora": "TinyLoRA",
    "unilora": "Uni-LoRA",
}


def _pareto_label(row: dict[str, Any]) -> str:
    settings = row.get("settings") or {}
    kind = settings.get("type")
    name = "head only" if kind is None else f"PEFT {PEFT_NAMES.get(kind, kind)}"
    if "r" in settings:
        name += f" r{settings['r']}"
    return f"{name} (mean of {len(row.get('seeds') or [])} seeds, minilm-l6)"


def pareto_references(path: Path = PARETO_FILE) -> dict[str, list[tuple[float, float, str]]]:
    """task -> [(bytes per task, mean test accuracy, label)] of the PEFT methods and the
    head-only floor in `bench/results/pareto.json` (ProPETL's own rows left out)."""
    try:
        rows = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    out: dict[str, list[tuple[float, float, str]]] = {}
    for row in rows if isinstance(rows, list) else []:
        if not isinstance(row, dict) or str(row.get("family", "")).startswith("ProPETL"):
            continue
        try:
            point = (float(row["bytes_per_task"]), float(row["acc_mean"]), _pareto_label(row))
        except (KeyError, TypeError, ValueError):
            continue
        out.setdefault(str(row.get("task")), []).append(point)
    return out


def reference_points(
    path: Path = REFERENCE_FILE,
    pareto_path: Path = PARETO_FILE,
) -> dict[str, list[tuple[float, float, str]]]:
    """task -> [(stored bytes, accuracy, label)]: the PEFT methods of `bench/pareto.py`
    (mean over seeds), then the ordinary PETL modules and the PEFT LoRA ranks that it has not
    measured from `bench/accuracy.py` (one seed); all on the bundled minilm-l6 backbone (empty
    when neither results file is there)."""
    out = pareto_references(pareto_path)
    try:
        results = json.loads(path.read_text())
    except (OSError, ValueError):
        return out
    have = {label.split(" (")[0] for label in (p[2] for p in out.get(REFERENCE_TASK, []))}
    points = [
        (float(row["task_bytes"]), float(row["accuracy"]), f"{name} (measured, minilm-l6)")
        for key, name in REFERENCE_NAMES.items()
        if name not in have
        and isinstance(row := results.get(key), dict)
        and "task_bytes" in row
        and "accuracy" in row
    ]
    if points:
        out.setdefault(REFERENCE_TASK, []).extend(points)
    return out


def sweep_plot_data(
    rows: list[dict[str, Any]], grid: dict[str, list[Any]]
) -> tuple[
    dict[str, dict[str, list[tuple[Any, float]]]], dict[str, list[tuple[float, float, str]]]
]:
    """From `sweep_rows`: per-task lines of score against the first swept field (one line per
    combination of the other fields), and per-task (bytes, score, group) points."""
    first, *others = list(grid)
    lines: dict[str, dict[str, list[tuple[Any, float]]]] = {}
    points: dict[str, list[tuple[float, float, str]]] = {}
    for row in rows:
        score = row["test"] if row["test"] is not None else row["dev"]
        if score is None:
            continue
        group = label({p: row["values"][p] for p in others})
        lines.setdefault(row["task"], {}).setdefault(group, []).append(
            (row["values"][first], score)
        )
        if row["stored_bytes"]:
            points.setdefault(row["task"], []).append((float(row["stored_bytes"]), score, group))
    return lines, points

"""A finished run, as its run page shows it and `GET /api/jobs/{id}/run` returns it: per-task
test metrics, time, the checkpoint choice with each task's best dev step, majority-class
baselines, and for classification tasks the confusion matrix, per-class precision / recall /
F1 and the worst misclassified test examples (from the files the engine writes in the run
folder, see `propetl.run_report`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .models import Job
from .registry import Registry
from .uploads import task_name

WORST = 5


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _predictions(run_dir: Path, task: str) -> list[dict[str, Any]]:
    from propetl.run_report import prediction_file

    try:
        lines = prediction_file(run_dir, task).read_text().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def classification_report(rows: list[dict[str, Any]], labels: list[str]) -> dict[str, Any]:
    """Confusion matrix (rows: gold, columns: predicted), per-class P / R / F1 and support,
    and the worst misclassified examples (the most confident wrong answers first)."""
    index = {name: i for i, name in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for row in rows:
        if row.get("gold") in index and row.get("predicted") in index:
            matrix[index[row["gold"]]][index[row["predicted"]]] += 1
    per_class = []
    for i, name in enumerate(labels):
        tp = matrix[i][i]
        predicted = sum(matrix[g][i] for g in range(len(labels)))
        support = sum(matrix[i])
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class.append(
            {"label": name, "precision": precision, "recall": recall, "f1": f1, "support": support}
        )
    wrong = [r for r in rows if r.get("gold") != r.get("predicted")]
    wrong.sort(key=lambda r: -float(r.get("probs", {}).get(r.get("predicted"), 0.0)))
    return {
        "labels": labels,
        "confusion": matrix,
        "per_class": per_class,
        "worst": wrong[:WORST],
        "examples": len(rows),
    }


def majority(counts: dict[str, int] | None) -> dict[str, Any] | None:
    """The majority class of a split and the accuracy of always answering it."""
    if not counts or not sum(counts.values()):
        return None
    label, top = max(counts.items(), key=lambda kv: kv[1])
    return {"label": label, "accuracy": top / sum(counts.values())}


def _dev_at(series: dict, task: str, step: int | None) -> float | None:
    for (t, split, name), points in series.items():
        if t == task and split == "dev" and name == "main":
            return next((v for s, v in points if s == step), None)
    return None


def run_view(registry: Registry, job: Job) -> dict[str, Any]:
    """Everything the run page shows; fields are None until the run has produced them."""
    run_dir = Path(job.run_dir) if job.run_dir else None
    result = (_read_json(run_dir / "result.json") if run_dir else None) or {}
    counts = (_read_json(run_dir / "predictions" / "class_counts.json") if run_dir else None) or {}
    series = registry.metric_series(job.id)
    wall = (
        (job.finished_at - job.started_at).total_seconds()
        if job.started_at and job.finished_at
        else None
    )
    steps = result.get("steps") or job.step or 0
    train_seconds = result.get("train_seconds")
    kept = result.get("best_step")
    task_best = result.get("task_best") or {}
    tasks = []
    for name in [task_name(t) for t in job.spec.get("config", {}).get("tasks", [])]:
        test = (result.get("test_metrics") or {}).get(name) or {}
        best = task_best.get(name)
        at_kept = _dev_at(series, name, kept)
        entry: dict[str, Any] = {
            "task": name,
            "test": test,
            "dev_at_kept_step": at_kept,
            "best_dev_step": best["step"] if best else None,
            "best_dev": best["score"] if best else None,
            "dev_lost_at_kept_step": (best["score"] - at_kept)
            if best and at_kept is not None
            else None,
            "majority": {split: majority(c) for split, c in (counts.get(name) or {}).items()},
            "classification": None,
        }
        labels = (result.get("tasks") or {}).get(name, {}).get("info", {}).get("label_names")
        if run_dir and labels:
            rows = _predictions(run_dir, name)
            if rows:
                entry["classification"] = classification_report(rows, list(labels))
        tasks.append(entry)
    return {
        "job": job.id,
        "status": job.status,
        "wall_seconds": wall,
        "train_seconds": train_seconds,
        "steps": steps,
        "step_seconds": train_seconds / steps if train_seconds and steps else None,
        "samples_per_second": result.get("samples_per_second") or job.samples_per_second,
        "kept_step": kept,
        "kept_because": "the best mean over tasks of the dev main metric"
        if kept is not None
        else None,
        "tasks": tasks,
    }

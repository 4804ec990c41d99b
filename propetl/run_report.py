"""What a run records beside its model for its run page: the training loss per task, each
task's best dev step, and the test predictions of every classification task.

Files in the run folder:
- `best/per_task.json`: {task: {"step", "score"}}, the best dev "main" score of each task and
  the step it was reached at (the kept checkpoint is chosen on the mean over tasks; this shows
  whether one task peaked elsewhere);
- `predictions/test/<task>.jsonl`: one line per test example: text(s), gold and predicted
  label, and the probability of each class;
- `predictions/class_counts.json`: {task: {split: {label: count}}} of the data trained and
  scored (the majority-class baselines).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .data import compute_metrics
from .evaluation import predict_split

PER_TASK_BEST = Path("best") / "per_task.json"
PREDICTIONS = Path("predictions") / "test"
CLASS_COUNTS = Path("predictions") / "class_counts.json"


class TaskLossMeter:
    """Training loss summed per task between two logs (each batch holds one task)."""

    def __init__(self) -> None:
        self._sum: dict[str, float] = defaultdict(float)
        self._count: dict[str, int] = defaultdict(int)

    def add(self, task: str | None, loss: Any) -> None:
        if task is None:
            return
        value = float(loss.detach().float().mean()) if torch.is_tensor(loss) else float(loss)
        if math.isfinite(value):
            self._sum[task] += value
            self._count[task] += 1

    def pop(self) -> dict[str, float]:
        """Mean loss of each task since the last call."""
        out = {t: self._sum[t] / self._count[t] for t in self._sum if self._count[t]}
        self._sum.clear()
        self._count.clear()
        return out


def batch_task(inputs: dict[str, Any], task_names: list[str]) -> str | None:
    """The task of a training batch (batches hold one task each)."""
    ids = inputs.get("task_ids")
    if ids is None or not torch.is_tensor(ids) or ids.numel() == 0:
        return None
    index = int(ids.reshape(-1)[0])
    return task_names[index] if 0 <= index < len(task_names) else None


def read_task_best(run_dir: Path) -> dict[str, dict[str, float]]:
    try:
        return json.loads((run_dir / PER_TASK_BEST).read_text())
    except (OSError, ValueError):
        return {}


def update_task_best(
    run_dir: Path,
    best: dict[str, dict[str, float]],
    step: int,
    metrics: dict[str, dict[str, float]],
) -> dict[str, dict[str, float]]:
    """Record each task whose dev main score beat its best so far; written to the run."""
    for task, values in metrics.items():
        score = values.get("main")
        if score is None or not math.isfinite(score):
            continue
        if task not in best or score > best[task]["score"]:
            best[task] = {"step": int(step), "score": float(score)}
    _write(run_dir / PER_TASK_BEST, json.dumps(best, indent=2))
    return best


def _file_name(task: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-]+", "_", task) + ".jsonl"


def prediction_file(run_dir: Path, task: str) -> Path:
    return run_dir / PREDICTIONS / _file_name(task)


Kept = dict[str, tuple[np.ndarray, np.ndarray]]


def test_with_predictions(model, data, job, device) -> tuple[dict[str, dict[str, float]], Kept]:
    """Every task's test metrics (as `evaluate_task` computes them), and the logits and labels
    of each classification task (for `write_predictions`)."""
    out: dict[str, dict[str, float]] = {}
    kept: Kept = {}
    for task, split in zip(data.tasks, data.test, strict=True):
        info = task.info
        logits, labels = predict_split(
            model, split, data.collator, info.name, job.eval_batch_size, device
        )
        out[info.name] = compute_metrics(
            info, logits[:, 0] if info.is_regression else logits, labels
        )
        if not info.is_regression and info.label_names:
            kept[info.name] = (logits, labels)
    return out, kept


def class_counts(data) -> dict[str, dict[str, dict[str, int]]]:
    """Examples per class of each classification task's splits."""
    out: dict[str, dict[str, dict[str, int]]] = {}
    for task in data.tasks:
        names = task.info.label_names
        if not names or task.info.is_regression or getattr(task.info, "generative", False):
            continue
        out[task.info.name] = {}
        for split in ("train", "dev", "test"):
            labels = np.asarray(task.splits[split]["label"], dtype=int)
            counts = (
                np.bincount(labels, minlength=len(names))
                if len(labels)
                else np.zeros(len(names), dtype=int)
            )
            out[task.info.name][split] = {n: int(c) for n, c in zip(names, counts, strict=True)}
    return out


def write_predictions(kept: Kept, data, run_dir: Path) -> list[Path]:
    """Write the kept test predictions (one JSON line per example with its probabilities)
    and the class counts of every split."""
    written = [run_dir / CLASS_COUNTS]
    _write(written[0], json.dumps(class_counts(data), indent=2))
    for task in data.tasks:
        info = task.info
        if info.name not in kept:
            continue
        logits, labels = kept[info.name]
        shifted = logits - logits.max(axis=1, keepdims=True)
        probs = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
        split = task.splits["test"]
        columns = [c for c in info.text_columns if c in split.column_names]
        texts = {c: split[c] for c in columns}
        names = list(info.label_names)
        lines = []
        for i in range(len(labels)):
            row = {
                "index": i,
                **{c: texts[c][i] for c in columns},
                "gold": names[int(labels[i])],
                "predicted": names[int(probs[i].argmax())],
                "probs": {n: round(float(p), 5) for n, p in zip(names, probs[i], strict=True)},
            }
            lines.append(json.dumps(row, ensure_ascii=False))
        path = prediction_file(run_dir, info.name)
        _write(path, "\n".join(lines) + "\n")
        written.append(path)
    return written


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)

"""Three bundled tasks over one shared prototype against three separate single-task runs."""

from __future__ import annotations

import shutil
from pathlib import Path

from propetl.config import PropetlConfig, TrainConfig
from propetl.training import train

from .common import BenchSettings, folder_bytes

TASKS = ["rotten_tomatoes", "bbc_news", "tweet_sentiment"]


def _job(tasks: list[str], settings: BenchSettings) -> TrainConfig:
    return TrainConfig(
        backbone=settings.backbone,
        tasks=tasks,
        lr=1e-3,
        propetl=PropetlConfig(petl="adapter", bottleneck=64, keep=0.5),
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        max_length=settings.max_length,
        max_examples=settings.multitask_examples,
        eval_every=10**6,
        sampling="proportional",
    )


def run(settings: BenchSettings, work: Path) -> dict:
    shared = train(_job(TASKS, settings), work / "shared", resume=False)
    print(f"[multitask] shared: {shared.test_metrics}", flush=True)
    separate = {}
    for task in TASKS:
        result = train(_job([task], settings), work / f"single-{task}", resume=False)
        separate[task] = {
            "metrics": result.test_metrics[task],
            "bytes": folder_bytes(Path(result.model_dir)),
        }
        print(f"[multitask] {task} alone: {result.test_metrics[task]}", flush=True)
    model_dir = Path(shared.model_dir)
    marginal = {t: folder_bytes(model_dir / "tasks" / t) for t in TASKS}
    majority = {t: _majority(info) for t, info in shared.tasks.items()}
    out = {
        "tasks": TASKS,
        "max_examples_per_split": settings.multitask_examples,
        "shared": {t: shared.test_metrics[t] for t in TASKS},
        "separate": {t: separate[t]["metrics"] for t in TASKS},
        "majority_baseline": majority,
        "shared_total_bytes": folder_bytes(model_dir),
        "separate_total_bytes": sum(s["bytes"] for s in separate.values()),
        "marginal_task_bytes": marginal,
        "marginal_mask_bytes": {
            t: (model_dir / "tasks" / t / "masks.safetensors").stat().st_size for t in TASKS
        },
    }
    shutil.rmtree(work, ignore_errors=True)
    return out


def _majority(task: dict) -> float | None:
    from propetl.data import load_task

    info = task["info"]
    data = load_task(info["name"], max_examples=None)
    labels = data.splits["test"]["label"]
    if not labels:
        return None
    return max(labels.count(v) for v in set(labels)) / len(labels)

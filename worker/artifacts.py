"""Publishing a finished run's model folder into the artifacts store, atomically."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from app.registry import RunOutcome, TaskOutcome


def publish_model(model_dir: Path, artifacts_dir: Path, uid: str) -> Path:
    """Copy `model_dir` to `artifacts_dir/prototypes/<uid>` (temporary folder, then rename)."""
    root = artifacts_dir / "prototypes"
    root.mkdir(parents=True, exist_ok=True)
    staging = root / f".tmp-{uid}"
    final = root / uid
    shutil.rmtree(staging, ignore_errors=True)
    try:
        shutil.copytree(model_dir, staging)
        os.rename(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final


def outcome_of(result: Any, artifact_path: Path, uid: str) -> RunOutcome:
    """The registry's view of a `propetl.training.TrainResult` published at `artifact_path`."""
    tasks: dict[str, TaskOutcome] = {}
    for name, summary in result.tasks.items():
        info = dict(summary.get("info") or {})
        if not info.get("sizes") and summary.get("sizes"):
            info["sizes"] = summary["sizes"]
        tasks[name] = TaskOutcome(
            info=info, artifact_path=str(artifact_path / "tasks" / name),
            mask_bits=int(summary.get("mask_bits") or 0),
            mask_bytes=int(summary.get("mask_bytes") or 0),
            density=[float(d) for d in summary.get("density") or []],
            dev_metrics=dict(result.dev_metrics.get(name, {})),
            test_metrics=dict(result.test_metrics.get(name, {})))
    return RunOutcome(artifact_path=str(artifact_path), storage=dict(result.storage), tasks=tasks,
                      steps=int(result.steps), uid=uid)

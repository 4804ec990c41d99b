"""Publishing a finished run's model folder into the artifacts store, atomically."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from app.registry import RunOutcome, TaskOutcome


class ArtifactError(OSError):
    """The model folder could not be written to the artifacts store (full, read-only...)."""


def publish_model(model_dir: Path, artifacts_dir: Path, uid: str) -> Path:
    """Copy `model_dir` to `artifacts_dir/prototypes/<uid>` (temporary folder, then rename).

    A failed copy leaves nothing behind and raises `ArtifactError` naming the folder and the
    cause (no space left, read-only file system, ...).
    """
    root = artifacts_dir / "prototypes"
    staging = root / f".tmp-{uid}"
    final = root / uid
    try:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(model_dir, staging)
        os.rename(staging, final)
    except BaseException as err:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(err, OSError):
            raise ArtifactError(
                f"could not write the model to the artifacts folder {root}: {_cause(err)}"
            ) from err
        raise
    return final


def _cause(err: OSError) -> str:
    """The OS's words for `err` (shutil.copytree bundles per-file errors in one Error)."""
    if isinstance(err, shutil.Error) and err.args and isinstance(err.args[0], list):
        reasons = sorted({str(why).split("] ")[-1].split(":")[0] for _, _, why in err.args[0]})
        return "; ".join(reasons)
    return err.strerror or str(err)


def outcome_of(result: Any, artifact_path: Path, uid: str) -> RunOutcome:
    """The registry's view of a `propetl.training.TrainResult` published at `artifact_path`."""
    tasks: dict[str, TaskOutcome] = {}
    for name, summary in result.tasks.items():
        info = dict(summary.get("info") or {})
        if not info.get("sizes") and summary.get("sizes"):
            info["sizes"] = summary["sizes"]
        tasks[name] = TaskOutcome(
            info=info,
            artifact_path=str(artifact_path / "tasks" / name),
            mask_bits=int(summary.get("mask_bits") or 0),
            mask_bytes=int(summary.get("mask_bytes") or 0),
            density=[float(d) for d in summary.get("density") or []],
            dev_metrics=dict(result.dev_metrics.get(name, {})),
            test_metrics=dict(result.test_metrics.get(name, {})),
        )
    return RunOutcome(
        artifact_path=str(artifact_path),
        storage=dict(result.storage),
        tasks=tasks,
        steps=int(result.steps),
        uid=uid,
    )

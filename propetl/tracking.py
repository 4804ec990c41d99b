"""Experiment tracking of a run: TensorBoard event files in `<run>/tensorboard`, and MLflow when
`PROPETL_MLFLOW_TRACKING_URI` is set (params, per-task metrics, the model folder).

The tracker listens to the engine's progress events (the same ones `metrics.jsonl` holds):
training loss (pooled and per task) and learning rates, each evaluation's per-task dev
metrics, the test metrics; the end of the run closes the writers. Either library missing
means that tracker is skipped, never a failed run.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

TENSORBOARD_DIR = "tensorboard"
MLFLOW_URI_ENV = "PROPETL_MLFLOW_TRACKING_URI"
MLFLOW_EXPERIMENT_ENV = "PROPETL_MLFLOW_EXPERIMENT"


def _flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = json.dumps(value) if isinstance(value, (list, tuple)) else value
    return out


def scalars(progress: Any) -> dict[str, float]:
    """The named values of one progress event ("train/loss", "dev/<task>/accuracy", ...)."""
    out: dict[str, float] = {}
    if progress.phase == "train":
        if progress.loss is not None:
            out["train/loss"] = progress.loss
        for task, value in (getattr(progress, "task_losses", None) or {}).items():
            out[f"train/loss/{task}"] = value
        for name, value in (progress.learning_rates or {}).items():
            out[f"train/{name}"] = value
        if progress.samples_per_second:
            out["train/samples_per_second"] = progress.samples_per_second
    split = {"eval": "dev", "test": "test"}.get(progress.phase)
    if split:
        for task, values in (progress.metrics or {}).items():
            for name, value in values.items():
                if isinstance(value, (int, float)):
                    out[f"{split}/{task}/{name}"] = float(value)
    return out


class Tracker:
    """`tracker(progress)` for every engine event; closes itself on the "done" event."""

    def __init__(self, config: Any, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.writer = self._tensorboard()
        self.mlflow = None
        self.mlflow_run_id: str | None = None
        uri = os.environ.get(MLFLOW_URI_ENV)
        if uri:
            self._start_mlflow(uri, config)

    def _tensorboard(self) -> Any:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is not installed
            log.info("tensorboard is not installed; no event files for %s", self.run_dir)
            return None
        return SummaryWriter(log_dir=str(self.run_dir / TENSORBOARD_DIR))

    def _start_mlflow(self, uri: str, config: Any) -> None:
        try:
            import mlflow
        except ImportError:
            log.warning(
                "%s is set but mlflow is not installed; not logging to MLflow", MLFLOW_URI_ENV
            )
            return
        if mlflow.active_run() is not None:  # left open by a run of this process that failed
            mlflow.end_run(status="FAILED")
        mlflow.set_tracking_uri(uri)
        mlflow.set_experiment(os.environ.get(MLFLOW_EXPERIMENT_ENV, "propetl"))
        run = mlflow.start_run(run_name=self.run_dir.name)
        self.mlflow, self.mlflow_run_id = mlflow, run.info.run_id
        params = _flat(config.to_dict()) if hasattr(config, "to_dict") else {}
        mlflow.log_params({k: ("" if v is None else v) for k, v in params.items()})
        (self.run_dir / "mlflow_run_id").write_text(run.info.run_id)

    def __call__(self, progress: Any) -> None:
        values = scalars(progress)
        try:
            if self.writer is not None:
                for name, value in values.items():
                    self.writer.add_scalar(name, value, progress.step)
                self.writer.flush()
            if self.mlflow is not None and values:
                self.mlflow.log_metrics(values, step=progress.step)
        except Exception:  # tracking never fails a run
            log.exception("could not record progress in the trackers")
        if progress.phase == "done":
            self.close()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        if self.mlflow is not None:
            try:
                model = self.run_dir / "model"
                if model.is_dir():
                    self.mlflow.log_artifacts(str(model), artifact_path="model")
                for name in ("result.json", "config.json"):
                    if (self.run_dir / name).is_file():
                        self.mlflow.log_artifact(str(self.run_dir / name))
            finally:
                self.mlflow.end_run()
                self.mlflow = None

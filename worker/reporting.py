"""Progress from the engine to the registry: throttled metric writes and a heartbeat thread."""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import fields
from pathlib import Path
from typing import Any

from app.registry import Point, Registry

log = logging.getLogger(__name__)

#: Which split an engine phase's metrics belong to.
PHASE_SPLIT = {"eval": "dev", "test": "test"}


def points_of(progress: Any) -> list[Point]:
    """The metric points one `propetl.training.Progress` event carries."""
    points: list[Point] = []
    if progress.phase == "train":
        if progress.loss is not None:
            points.append(
                Point(progress.step, "train", "loss", progress.loss, epoch=progress.epoch)
            )
        for task, value in (getattr(progress, "task_losses", None) or {}).items():
            points.append(
                Point(progress.step, "train", "loss", value, task=task, epoch=progress.epoch)
            )
        for name, value in (progress.learning_rates or {}).items():
            points.append(Point(progress.step, "train", name, value, epoch=progress.epoch))
    split = PHASE_SPLIT.get(progress.phase)
    if split:
        for task, values in (progress.metrics or {}).items():
            for name, value in values.items():
                points.append(
                    Point(progress.step, split, name, value, task=task, epoch=progress.epoch)
                )
    return points


def logged_points(log_path: Path) -> list[Point]:
    """The metric points of every event in a run's `metrics.jsonl` (a torn last line, from a
    process killed while writing, is skipped)."""
    from propetl.training import Progress

    known = {f.name for f in fields(Progress)}
    points: list[Point] = []
    try:
        lines = log_path.read_text().splitlines()
    except FileNotFoundError:
        return points
    for line in lines:
        try:
            event = json.loads(line)
            progress = Progress(**{k: v for k, v in event.items() if k in known})
        except (ValueError, TypeError):
            continue
        points.extend(points_of(progress))
    return points


def replay_log(registry: Registry, job_id: int, run_dir: Path) -> int:
    """Record every point a run has logged so far (idempotent upserts).

    An earlier attempt may have logged points it could not write before it died or lost
    the database; steps before its last checkpoint are not trained again, so their points
    come from the run's own log.
    """
    return registry.add_metric_points(job_id, logged_points(run_dir / "metrics.jsonl"))


class ProgressSink:
    """The engine's `on_progress`: buffers train points, writes at most every `interval` s.

    Evaluations, the test and the end are written at once. A failing write is logged and
    retried with the next flush; it never stops training.
    """

    def __init__(self, registry: Registry, job_id: int, attempt: int, interval: float) -> None:
        self.registry, self.job_id, self.attempt, self.interval = (
            registry,
            job_id,
            attempt,
            interval,
        )
        self._points: list[Point] = []
        self._latest: Any = None
        self._last_flush = 0.0
        self._lock = threading.Lock()

    def __call__(self, progress: Any) -> None:
        with self._lock:
            self._points.extend(points_of(progress))
            self._latest = progress
        urgent = progress.phase != "train"
        if urgent or time.monotonic() - self._last_flush >= self.interval:
            self.flush()

    def flush(self, strict: bool = False) -> None:
        """Write the buffered points; on failure keep them for the next flush, and re-raise
        when `strict` (the last flush of a run, which must not drop points)."""
        with self._lock:
            points, self._points = self._points, []
            latest = self._latest
        self._last_flush = time.monotonic()
        try:
            self.registry.add_metric_points(self.job_id, points)
            if latest is not None:
                self.registry.report_progress(
                    self.job_id,
                    self.attempt,
                    step=latest.step,
                    total_steps=latest.total_steps,
                    phase=latest.phase,
                    eta_seconds=latest.eta_seconds,
                    samples_per_second=latest.samples_per_second,
                )
        except Exception:
            with self._lock:
                self._points[:0] = points
            if strict:
                raise
            log.exception("job %s: could not record progress; will retry", self.job_id)


class Heartbeat(threading.Thread):
    """Marks the job alive every `interval` s; learns of cancel requests and lost ownership."""

    def __init__(self, registry: Registry, job_id: int, attempt: int, interval: float) -> None:
        super().__init__(name=f"heartbeat-{job_id}", daemon=True)
        self.registry, self.job_id, self.attempt, self.interval = (
            registry,
            job_id,
            attempt,
            interval,
        )
        self.cancel = threading.Event()
        self.lost = threading.Event()
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(self.interval):
            self.beat()

    def beat(self) -> None:
        try:
            signal = self.registry.heartbeat(self.job_id, self.attempt)
        except Exception:
            log.exception("job %s: heartbeat failed", self.job_id)
            return
        if signal == "cancel":
            self.cancel.set()
        elif signal == "lost":
            self.lost.set()

    def should_stop(self) -> bool:
        return self.cancel.is_set() or self.lost.is_set()

    def __enter__(self) -> Heartbeat:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self.join(timeout=max(5.0, 2 * self.interval))

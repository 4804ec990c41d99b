"""The Celery app for `celery -A worker.celery_app worker`: app's object plus the task bodies."""

from __future__ import annotations

from app.queue import get_celery

app = get_celery()

from worker import lifecycle, tasks  # noqa: E402  (registers tasks and signal handlers)

__all__ = ["app", "lifecycle", "tasks"]

"""The Celery application (broker and backend from settings) and the enqueue call.

The app sends jobs by task name, so it never imports `worker/`; `worker.celery_app` imports
this object and registers the task bodies on it.
"""

from __future__ import annotations

import logging
import threading

from celery import Celery

from .settings import Settings, get_settings

log = logging.getLogger(__name__)

RUN_JOB = "worker.tasks.run_job"

_app: Celery | None = None
_lock = threading.Lock()


def create_celery(settings: Settings | None = None) -> Celery:
    """A Celery app configured for long, crash-safe jobs: late acks, one job at a time."""
    settings = settings or get_settings()
    settings.ensure_dirs()
    app = Celery("propetl", broker=settings.broker_url, backend=settings.result_backend or None)
    transport: dict[str, object] = {}
    if settings.broker_url.startswith(("redis", "rediss")):
        transport["visibility_timeout"] = settings.visibility_timeout
    if settings.embedded_broker:  # kombu hands these to SQLAlchemy's create_engine
        transport["connect_args"] = {"timeout": 30}
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_default_queue=settings.default_queue,
        task_ignore_result=settings.result_backend is None,
        broker_transport_options=transport,
        broker_connection_retry_on_startup=True,
        worker_send_task_events=False,
        enable_utc=True,
    )
    return app


def get_celery() -> Celery:
    """The process-wide Celery app (rebuilt by `reset_celery()` after settings change)."""
    global _app
    with _lock:
        if _app is None:
            _app = create_celery()
        return _app


def reset_celery() -> None:
    global _app
    with _lock:
        _app = None


def enqueue_job(job_id: int, queue: str, task_id: str) -> None:
    """Send `run_job(job_id)` to `queue` under the given Celery task id."""
    get_celery().send_task(RUN_JOB, args=[job_id], queue=queue, task_id=task_id)


def active_task_ids(timeout: float = 1.0) -> set[str] | None:
    """Ids of tasks that live workers report as running, or None when nobody can tell.

    Workers with the solo pool do not answer while they run a job, so an empty answer is
    no proof of death: the reaper trusts heartbeats first and this only as a veto.
    """
    try:
        replies = get_celery().control.inspect(timeout=timeout).active() or {}
    except Exception as err:  # broker without broadcast support, or unreachable
        log.debug("inspect failed: %s", err)
        return None
    return {task["id"] for tasks in replies.values() for task in tasks}

"""Worker start-up: migrate the registry, then reap stale jobs now and periodically."""

from __future__ import annotations

import logging
import os
import signal
import threading

from celery.signals import worker_init, worker_process_init, worker_ready, worker_shutdown

from app import db
from app.queue import active_task_ids
from app.registry import get_registry, reset_registry
from app.settings import PARENT_PID_ENV, get_settings

from .runner import RUNNING_HERE

log = logging.getLogger(__name__)

_stop = threading.Event()


def alive_task_ids() -> set[str]:
    """Tasks known to be running: those live workers report, and this process's own."""
    return (active_task_ids() or set()) | set(RUNNING_HERE)


def reap_once() -> list[tuple[int, str]]:
    """Re-queue or fail jobs whose worker died (no heartbeat, not active anywhere)."""
    try:
        actions = get_registry().reap_stale_jobs(active=alive_task_ids)
    except Exception:
        log.exception("reaper pass failed")
        return []
    for job_id, action in actions:
        log.warning("reaper: job %s %s", job_id, action)
    return actions


def _reaper_loop(interval: float) -> None:
    while not _stop.wait(interval):
        reap_once()


def _watch_parent(parent: int, interval: float = 1.0) -> None:
    """Warm-shut this worker down once its parent is another process than `parent` (the
    server that started it is gone): an embedded worker never outlives its server."""
    while not _stop.wait(interval):
        if os.getppid() != parent:
            log.warning("the server (pid %s) that started this worker is gone; stopping", parent)
            os.kill(os.getpid(), signal.SIGTERM)
            return


@worker_init.connect
def _on_init(**_: object) -> None:
    parent = os.environ.get(PARENT_PID_ENV, "")
    if parent.isdigit():
        threading.Thread(
            target=_watch_parent, args=(int(parent),), name="parent-watch", daemon=True
        ).start()


@worker_ready.connect
def _on_ready(**_: object) -> None:
    settings = get_settings()
    if settings.auto_migrate:
        db.upgrade()
    reap_once()
    threading.Thread(
        target=_reaper_loop, args=(settings.reaper_interval,), name="reaper", daemon=True
    ).start()


@worker_process_init.connect
def _on_fork(**_: object) -> None:
    # a forked pool child must not share its parent's database connections
    db.dispose_engines()
    reset_registry()


@worker_shutdown.connect
def _on_shutdown(**_: object) -> None:
    _stop.set()

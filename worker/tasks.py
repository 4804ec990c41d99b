"""The Celery tasks; `app.queue.enqueue_job` sends `worker.tasks.run_job` by name."""

from __future__ import annotations

from celery import Task

from app.queue import RUN_JOB, get_celery

from .runner import execute

celery = get_celery()


@celery.task(name=RUN_JOB, bind=True, acks_late=True, reject_on_worker_lost=True,
             ignore_result=True)
def run_job(self: Task, job_id: int) -> str:
    """Run a registry job to its end (late ack: a worker's death re-delivers it)."""
    return execute(int(job_id), task_id=self.request.id)

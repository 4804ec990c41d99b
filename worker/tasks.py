"""The Celery tasks; `app.queue.enqueue_job` sends `worker.tasks.run_job` by name."""

from __future__ import annotations

from celery import Task

from app.queue import RUN_JOB, get_celery

from .runner import RegistryUnreachable, execute

celery = get_celery()

#: Seconds before a delivery that found the registry unreachable is tried again.
CLAIM_RETRY_DELAY = 10


@celery.task(
    name=RUN_JOB, bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True
)
def run_job(self: Task, job_id: int) -> str:
    """Run a registry job to its end (late ack: a worker's death re-delivers it)."""
    try:
        return execute(int(job_id), task_id=self.request.id)
    except RegistryUnreachable as err:
        # the job is still queued in the registry: send the message again, later
        raise self.retry(exc=err, countdown=CLAIM_RETRY_DELAY, max_retries=None) from err

"""The reaper: re-queue or fail running jobs whose worker stopped heartbeating, and re-send
jobs whose broker message may be lost."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select

from .. import db
from ..models import Job, JobStatus, utcnow
from .jobs import JobsMixin

log = logging.getLogger("app.registry")  # the logger these messages had before the split


class ReaperMixin(JobsMixin):
    """Finds jobs nobody runs or nobody received and hands them out again."""

    def reap_stale_jobs(
        self, timeout: float | None = None, active: Callable[[], set[str] | None] | None = None
    ) -> list[tuple[int, str]]:
        """Re-queue (or fail, after `max_attempts`) running jobs whose heartbeat stopped.

        `active` lists Celery task ids that live workers report; a job among them is left
        alone. Jobs queued for longer than `queued_resend_after` are sent to their queue again
        (`resend_queued`). Returns (job id, "requeued" | "failed" | "cancelled" | "resent")
        for each job handled.
        """
        actions: list[tuple[int, str]] = self.resend_queued()
        timeout = self.settings.reaper_timeout if timeout is None else timeout
        cutoff = utcnow() - timedelta(seconds=timeout)
        stale_q = select(Job.id, Job.attempts, Job.celery_task_id).where(
            Job.status == JobStatus.running.value,
            or_(Job.heartbeat_at.is_(None), Job.heartbeat_at < cutoff),
        )
        with self._sessions() as s:
            stale = list(s.execute(stale_q))
        if not stale:
            return actions
        alive = (active() if active else None) or set()
        for job_id, attempt, task_id in stale:
            if task_id in alive:
                continue
            action = self._reap_one(job_id, attempt, cutoff)
            if action:
                actions.append((job_id, action))
        return actions

    def resend_queued(self, older_than: float | None = None) -> list[tuple[int, str]]:
        """Send again every job queued (or last sent) longer than `older_than` seconds ago
        (default: `queued_resend_after`): its broker message may be lost (a broker restarted
        without persistence, a queue purged). Claims are fenced, so a job whose first message
        does arrive still runs once. For a queued job, `heartbeat_at` holds when it was last
        sent."""
        older_than = self.settings.queued_resend_after if older_than is None else older_than
        cutoff = utcnow() - timedelta(seconds=older_than)
        sent_at = func.coalesce(Job.heartbeat_at, Job.created_at)
        query = select(Job.id).where(Job.status == JobStatus.queued.value, sent_at < cutoff)
        with self._sessions() as s:
            due = list(s.scalars(query.order_by(Job.id)))
        actions = []
        for job_id in due:
            sent = self._resend_one(job_id, cutoff)
            if sent is not None:
                try:
                    self._enqueue(job_id, *sent)
                except Exception:  # the broker is down: the next pass tries again
                    log.exception("job %s: could not re-send to queue %s", job_id, sent[0])
                    continue
                log.warning(
                    "job %s: queued since before %s, sent to queue %s again",
                    job_id,
                    cutoff.isoformat(timespec="seconds"),
                    sent[0],
                )
                actions.append((job_id, "resent"))
        return actions

    @db.retry_writes()
    def _resend_one(self, job_id: int, cutoff: datetime) -> tuple[str, str] | None:
        task_id = str(uuid.uuid4())
        with self._tx() as s:
            job = s.scalar(
                select(Job)
                .where(
                    Job.id == job_id,
                    Job.status == JobStatus.queued.value,
                    func.coalesce(Job.heartbeat_at, Job.created_at) < cutoff,
                )
                .with_for_update()
            )
            if job is None:  # claimed, cancelled or re-sent by another reaper meanwhile
                return None
            job.heartbeat_at = utcnow()
            job.celery_task_id = task_id
            return job.queue, task_id

    @db.retry_writes()
    def _reap_one(self, job_id: int, attempt: int, cutoff: datetime) -> str | None:
        task_id = str(uuid.uuid4())
        with self._tx() as s:
            job = s.scalar(
                select(Job)
                .where(
                    self._fenced(job_id, attempt),
                    or_(Job.heartbeat_at.is_(None), Job.heartbeat_at < cutoff),
                )
                .with_for_update()
            )
            if job is None:  # it came back to life, or another reaper got it
                return None
            lost = f"worker {job.worker_host} lost (no heartbeat since {job.heartbeat_at})"
            if job.cancel_requested:
                job.status, job.finished_at = JobStatus.cancelled.value, utcnow()
                return "cancelled"
            if job.attempts >= self.settings.max_attempts:
                job.status, job.finished_at = JobStatus.failed.value, utcnow()
                job.error = f"{lost}; gave up after {job.attempts} attempts"
                return "failed"
            self._requeue(job, task_id)
            job.error = f"{lost}; re-queued"
            queue = job.queue
        log.warning("job %s: worker lost, re-queued", job_id)
        self._send(job_id, queue, task_id)
        return "requeued"

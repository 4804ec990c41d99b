"""A queued job whose broker message was lost (Redis restarted without persistence, a purged
queue) is sent again by the reaper once it has waited `PROPETL_QUEUED_RESEND_AFTER`; claims
are fenced, so a job whose first message does arrive still runs once. The Jobs tab says how
long a job has waited and on which queue."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests import services
from tests.worker.conftest import REPO, tiny_job

pytestmark = [pytest.mark.services, pytest.mark.timeout(240)]


def _lose_messages(queue: str) -> int:
    import redis

    client = redis.Redis.from_url(services.REDIS_URL)
    keys = [queue, *client.keys(f"{queue}\x06*")]
    lost = sum(client.llen(k) for k in keys)
    client.delete(*keys)
    return lost


def _reap(env: dict[str, str], resend_after: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "jobs", "reap"],
        cwd=REPO,
        env={**env, "PROPETL_QUEUED_RESEND_AFTER": resend_after},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_a_job_whose_message_was_lost_is_sent_again(redis_stack):
    from app import views
    from app.ui.jobs import progress_html

    stack = redis_stack
    job_id = stack.registry.submit_job(tiny_job(stack.queue))
    assert _lose_messages(stack.queue) == 1
    stack.start_worker()
    time.sleep(2)
    job = stack.registry.get_job(job_id)
    assert job.status == "queued"  # nothing will ever arrive
    waiting = views.job_summary(job)["waiting"]
    assert f"on queue {stack.queue}" in waiting and waiting.startswith("waiting ")
    assert f"on queue {stack.queue}" in progress_html(job)

    assert stack.registry.resend_queued(older_than=3600) == []  # not waited long enough
    assert f"job {job_id}: resent" in _reap(stack.env, "1")  # the reaper's command
    assert stack.wait_final(job_id).status == "succeeded"
    assert stack.registry.get_job(job_id).attempts == 1

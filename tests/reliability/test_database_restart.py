"""PostgreSQL, the registry, stopped and restarted while a worker runs a job.

A short outage is ridden out by the worker's write retries (the same attempt finishes);
one longer than `PROPETL_DB_RETRY_SECONDS` leaves the job to the reaper, which re-queues
it once the database is back, and the next attempt resumes from its last checkpoint.
Either way the registry is consistent afterwards: one prototype, every point once.
"""

from __future__ import annotations

import time

import pytest

from .conftest import assert_exactly_once, long_job, set_env, wait_for

pytestmark = [pytest.mark.services, pytest.mark.timeout(240)]


def test_short_outage_is_retried_and_the_same_attempt_finishes(
    postgres_registry_stack, private_postgres, monkeypatch
):
    stack = postgres_registry_stack
    # the outage is shorter than the retry bound and the reaper's patience
    set_env(stack, monkeypatch, PROPETL_DB_RETRY_SECONDS="60", PROPETL_REAPER_TIMEOUT="60")
    stack.start_worker()
    registry = stack.registry
    job_id = registry.submit_job(long_job(stack.queue, steps=120))
    wait_for(lambda: registry.get_job(job_id).step >= 15, 90, "the job to pass step 15")
    private_postgres.stop("fast")  # every client connection is cut
    time.sleep(5)
    private_postgres.start()
    stack.wait_final(job_id, timeout=120)
    assert_exactly_once(stack, job_id, attempts=1)
    log = stack.logs[0].read_text()
    assert "retry 1 in" in log, "the worker should have retried its writes"


@pytest.mark.slow
def test_outage_past_the_retry_bound_leaves_the_job_to_the_reaper(
    postgres_registry_stack, private_postgres, monkeypatch
):
    stack = postgres_registry_stack
    set_env(stack, monkeypatch, PROPETL_DB_RETRY_SECONDS="1")
    stack.start_worker()
    registry = stack.registry
    job_id = registry.submit_job(long_job(stack.queue, steps=60))
    wait_for(lambda: registry.get_job(job_id).step >= 40, 90, "the job to pass step 40")
    private_postgres.stop("immediate")  # a crash
    log = stack.logs[0]
    wait_for(
        lambda: "leaving the job to the reaper" in log.read_text(),
        90,
        f"the worker to give up on the registry\n{stack.tail()}",
    )
    private_postgres.start()
    job = stack.wait_final(job_id, timeout=120)
    assert job.status == "succeeded", job.error
    assert job.attempts == 2  # the reaper re-queued it and the next attempt resumed
    assert_exactly_once(stack, job_id, attempts=2)

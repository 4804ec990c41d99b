"""Redis, the broker, stopped and restarted while a job runs and another waits in the queue.

The broker keeps an append-only file (as the compose deployment does), so the queued
message survives; the worker reconnects on its own and both jobs finish exactly once.
"""

from __future__ import annotations

import time

import pytest

from .conftest import assert_exactly_once, long_job, tiny_job, wait_for

pytestmark = [pytest.mark.services, pytest.mark.timeout(240)]


def test_redis_restart_mid_job_loses_and_duplicates_nothing(redis_broker_stack, private_redis):
    stack = redis_broker_stack
    stack.start_worker()
    registry = stack.registry
    running = registry.submit_job(long_job(stack.queue, steps=120))
    queued = registry.submit_job(tiny_job(stack.queue, max_steps=4, eval_every=2))
    wait_for(lambda: registry.get_job(running).step >= 15, 90, "the first job to pass step 15")
    private_redis.stop()
    time.sleep(3)
    assert registry.get_job(running).status == "running"
    private_redis.start()
    for job_id in (running, queued):
        stack.wait_final(job_id, timeout=120)
    assert_exactly_once(stack, running, attempts=1)
    assert_exactly_once(stack, queued, attempts=1)
    assert len(registry.list_prototypes()) == 2
    # the worker is still consuming after the restart
    later = registry.submit_job(tiny_job(stack.queue))
    assert stack.wait_final(later, timeout=60).status == "succeeded"

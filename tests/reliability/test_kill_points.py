"""A worker killed with SIGKILL at several random points of one job, a new one started each
time: the job still completes exactly once (one prototype, every metric point once)."""

from __future__ import annotations

import random

import pytest

from .conftest import assert_exactly_once, long_job, set_env, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

STEPS = 150
KILLS = 3


def test_sigkill_at_random_points_still_completes_exactly_once(embedded_stack, monkeypatch):
    stack = embedded_stack
    set_env(stack, monkeypatch, PROPETL_MAX_ATTEMPTS=str(KILLS + 2))
    rng = random.Random(20260528)
    # one kill point in each stretch of the run, anywhere inside it
    stretch = STEPS // KILLS
    points = [rng.randrange(i * stretch + 3, (i + 1) * stretch) for i in range(KILLS)]
    registry = stack.registry
    job_id = registry.submit_job(long_job(stack.queue, steps=STEPS))
    for point in points:
        worker = stack.start_worker()
        wait_for(
            lambda p=point: registry.get_job(job_id).step >= p,
            120,
            f"the job to pass step {point}\n{stack.tail()}",
        )
        stack.kill(worker)
        assert registry.get_job(job_id).status == "running"
    stack.start_worker()
    stack.wait_final(job_id, timeout=150)
    job = assert_exactly_once(stack, job_id, attempts=KILLS + 1, strays=True)
    assert job.step == STEPS

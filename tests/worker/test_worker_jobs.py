"""Jobs run on real worker processes: success, failure, cancel, kill -9, many jobs at once."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from .conftest import long_job, tiny_job, wait_for

pytestmark = [pytest.mark.services, pytest.mark.timeout(240)]


def _assert_registered(stack, job_id: int, tasks: list[str]) -> None:
    registry = stack.registry
    job = registry.get_job(job_id)
    assert job.status == "succeeded", job.error
    assert job.progress == 1.0 and job.attempts == 1
    proto = registry.prototype_for_job(job_id)
    assert proto is not None and Path(proto.artifact_path).is_dir()
    assert (Path(proto.artifact_path) / "prototype.safetensors").is_file()
    assert proto.prototype_params > 0 and proto.backbone.name == "tiny-bert"
    assert sorted(m.task.name for m in proto.mask_sets) == sorted(tasks)
    for mask in proto.mask_sets:
        assert mask.mask_bits > 0 and Path(mask.artifact_path).is_dir()
        assert mask.test_metrics and mask.dev_metrics
    series = registry.metric_series(job_id)
    assert ("", "train", "loss") in series
    for task in tasks:
        assert series[(task, "dev", "accuracy")], series.keys()
        assert series[(task, "test", "accuracy")]
    leftovers = [
        p.name for p in Path(proto.artifact_path).parent.iterdir() if p.name.startswith(".")
    ]
    assert leftovers == []


def test_embedded_broker_runs_a_job_and_records_a_failure(embedded_stack):
    stack = embedded_stack
    stack.start_worker()
    registry = stack.registry
    # a data file that passes validation and is gone by the time the job runs
    data = stack.tmp / "mine.csv"
    data.write_text("text,label\n" + "".join(f"text {i},{i % 2}\n" for i in range(40)))
    bad = registry.submit_job(tiny_job(stack.queue, tasks=[str(data)]))
    data.unlink()
    good = registry.submit_job(tiny_job(stack.queue, max_steps=4, eval_every=2))
    failed = stack.wait_final(bad)
    assert failed.status == "failed" and "mine.csv" in failed.error
    assert registry.prototype_for_job(bad) is None
    stack.wait_final(good)
    _assert_registered(stack, good, ["rotten_tomatoes"])
    assert len(registry.list_prototypes()) == 1


def test_redis_and_postgres_run_a_two_task_job(redis_stack):
    stack = redis_stack
    stack.start_worker()
    tasks = ["rotten_tomatoes", "tweet_sentiment"]
    job_id = stack.registry.submit_job(
        tiny_job(stack.queue, tasks=tasks, max_steps=4, eval_every=2)
    )
    stack.wait_final(job_id)
    _assert_registered(stack, job_id, tasks)


def test_cancel_keeps_checkpoint_frees_worker_and_retry_resumes(redis_stack):
    stack = redis_stack
    stack.start_worker()
    registry = stack.registry
    job_id = registry.submit_job(long_job(stack.queue, steps=150))
    wait_for(lambda: registry.get_job(job_id).step >= 12, 60, "the job to pass step 12")
    registry.request_cancel(job_id)
    job = stack.wait_final(job_id, timeout=30)
    assert job.status == "cancelled" and job.step < 150
    checkpoints = list((Path(job.run_dir) / "checkpoints").glob("checkpoint-*"))
    assert checkpoints, "a cancelled job keeps its checkpoint"
    assert registry.prototype_for_job(job_id) is None
    # the worker is free for the next job
    nxt = registry.submit_job(tiny_job(stack.queue))
    assert stack.wait_final(nxt).status == "succeeded"
    # and the cancelled job resumes where it stopped
    registry.retry(job_id)
    done = stack.wait_final(job_id)
    assert done.status == "succeeded" and done.attempts == 2
    steps = _train_steps(Path(job.run_dir))
    assert steps == sorted(set(steps)), f"the retry did not continue from the checkpoint: {steps}"


def _train_steps(run_dir: Path) -> list[int]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [e["step"] for e in map(json.loads, lines) if e["phase"] == "train"]


@pytest.mark.parametrize("stack_kind", ["redis_stack", "embedded_stack"])
def test_kill_9_mid_run_then_a_new_worker_resumes(stack_kind, request):
    stack = request.getfixturevalue(stack_kind)
    first = stack.start_worker()
    registry = stack.registry
    job_id = registry.submit_job(long_job(stack.queue, steps=150))
    run_dir = Path(wait_for(lambda: registry.get_job(job_id).run_dir, 30, "a run dir"))
    wait_for(
        lambda: list((run_dir / "checkpoints").glob("checkpoint-2*")),
        90,
        "a checkpoint at step 20+",
    )
    stack.kill(first)
    assert registry.get_job(job_id).status == "running"
    stack.start_worker()
    job = stack.wait_final(job_id, timeout=120)
    assert job.status == "succeeded", job.error
    assert job.attempts == 2
    assert len(registry.list_prototypes()) == 1
    assert registry.prototype_for_job(job_id) is not None
    # every (step, task, split, name) once, though steps after the checkpoint were re-run
    series = registry.metric_series(job_id)
    for key, points in series.items():
        steps = [s for s, _ in points]
        assert len(steps) == len(set(steps)), key
    # the log shows where the second attempt started: never back at the beginning
    steps = _train_steps(run_dir)
    restarts = [steps[i] for i in range(1, len(steps)) if steps[i] <= steps[i - 1]]
    assert all(step > 10 for step in restarts), f"did not resume from a checkpoint: {steps}"
    assert max(steps) >= 147


def test_twenty_jobs_two_workers_each_exactly_once(redis_stack):
    stack = redis_stack
    stack.start_worker(wait=False)
    stack.start_worker()
    wait_for(lambda: all(" ready." in log.read_text() for log in stack.logs), 60, "workers")
    registry = stack.registry
    ids = [registry.submit_job(tiny_job(stack.queue)) for _ in range(20)]
    for job_id in ids:
        stack.wait_final(job_id, timeout=180)
    jobs = [registry.get_job(i) for i in ids]
    assert Counter(j.status for j in jobs) == {"succeeded": 20}
    assert all(j.attempts == 1 for j in jobs)
    protos = registry.list_prototypes()
    assert sorted(p.job_id for p in protos) == sorted(ids)
    hosts = Counter(j.worker_host for j in jobs)
    assert len(hosts) == 2, hosts

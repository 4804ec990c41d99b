"""Jobs that add tasks onto a registered prototype, on real workers with PostgreSQL and Redis:
two add-jobs at once both land, old files stay byte-identical, failures and cancels leave the
prototype as it was."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from propetl.continual import file_hashes

from .conftest import tiny_job, wait_for

pytestmark = [pytest.mark.services, pytest.mark.timeout(300)]


def _add(stack, uid: str, tasks: list[str], **config) -> dict:
    spec = tiny_job(stack.queue, tasks=tasks, max_steps=3, eval_every=3, **config)
    del spec["config"]["backbone"]  # comes from the prototype
    return {**spec, "base_prototype": uid}


def _state(stack, uid: str) -> tuple[dict[str, str], list[tuple[int, str, int | None]]]:
    proto = stack.registry.get_prototype(uid)
    rows = [(m.position, m.task.name, m.job_id) for m in proto.mask_sets]
    return file_hashes(proto.artifact_path), rows


def test_two_add_jobs_at_once_both_land_and_failures_leave_the_prototype(redis_stack):
    from app.prototype_tasks import BaseConflictError, task_history

    stack = redis_stack
    stack.start_worker()
    stack.start_worker()
    registry = stack.registry
    base_job = registry.submit_job(
        tiny_job(
            stack.queue, tasks=["bbc_news"], max_steps=3, propetl={"keep": 0.3, "bottleneck": 8}
        )
    )
    assert stack.wait_final(base_job).status == "succeeded", stack.tail()
    uid = registry.prototype_for_job(base_job).uid
    before, rows = _state(stack, uid)
    assert rows == [(0, "bbc_news", base_job)]

    # refused at submit: a method field that differs, a task name already there
    with pytest.raises(
        BaseConflictError, match=re.escape("propetl.keep: given 0.5, the prototype has 0.3")
    ):
        registry.submit_job(
            {
                **_add(stack, uid, ["rotten_tomatoes"]),
                "config": {"tasks": ["rotten_tomatoes"], "propetl": {"keep": 0.5}},
            }
        )
    with pytest.raises(BaseConflictError, match="already on the prototype"):
        registry.submit_job(_add(stack, uid, ["bbc_news"]))

    # two add-jobs at once, on two workers
    first = registry.submit_job(_add(stack, uid, ["rotten_tomatoes"]))
    second = registry.submit_job(_add(stack, uid, ["tweet_sentiment"]))
    jobs = [stack.wait_final(first), stack.wait_final(second)]
    assert [j.status for j in jobs] == ["succeeded", "succeeded"], stack.tail()
    assert len({j.worker_host for j in jobs}) == 2, "the add-jobs ran on two workers"
    after, rows = _state(stack, uid)
    assert {k: v for k, v in after.items() if k in before} == before  # byte-identical
    assert sorted(rows)[0] == (0, "bbc_news", base_job)
    assert sorted((r[1], r[2]) for r in rows[1:]) == [
        ("rotten_tomatoes", first),
        ("tweet_sentiment", second),
    ]
    assert [r[0] for r in rows] == [0, 1, 2]
    artifact = Path(registry.get_prototype(uid).artifact_path)
    assert sorted(p.name for p in (artifact / "tasks").iterdir()) == [
        "bbc_news",
        "rotten_tomatoes",
        "tweet_sentiment",
    ]
    assert all(
        k.startswith(("tasks/bbc_news/", "tasks/rotten_tomatoes/", "tasks/tweet_sentiment/"))
        or k in before
        for k in after
    )
    history = task_history(registry, uid)
    assert [h.task for h in history] == [r[1] for r in rows]
    assert all(h.test_metrics and h.mask_bytes > 0 and h.job_name for h in history)
    assert registry.prototype_for_job(first) is None  # an add-job makes no prototype

    # a failing add-job (its data file gone by the time it runs) and a cancelled one
    data = stack.tmp / "mine.csv"
    data.write_text("text,label\n" + "".join(f"text {i},{i % 2}\n" for i in range(64)))
    failing = registry.submit_job(_add(stack, uid, [str(data)]))
    data.unlink()
    data2 = stack.tmp / "long.csv"
    data2.write_text(
        "text,label\n" + "".join(f"words {i} " * 20 + f",{i % 2}\n" for i in range(64))
    )
    long = _add(stack, uid, [str(data2)])
    long["config"].update(
        max_steps=400, max_length=128, max_examples=64, save_every=10, eval_every=200
    )
    cancelled = registry.submit_job(long)
    wait_for(lambda: registry.get_job(cancelled).step >= 5, 90, "the add-job to pass step 5")
    registry.request_cancel(cancelled)
    assert stack.wait_final(failing).status == "failed"
    assert stack.wait_final(cancelled, timeout=60).status == "cancelled"
    assert _state(stack, uid) == (after, rows)

"""The service layer on SQLite and PostgreSQL: jobs, claims, metrics, results, the reaper."""

from __future__ import annotations

import threading
import time

import pytest
from pydantic import ValidationError

from app import db
from app.registry import (
    InvalidStateError,
    Point,
    Registry,
    RunOutcome,
    TaskOutcome,
)

SPEC = {
    "name": "t",
    "config": {
        "backbone": "tiny-bert",
        "tasks": ["rotten_tomatoes"],
        "max_steps": 4,
        "max_examples": 32,
    },
}


def _outcome(tasks=("rotten_tomatoes",)) -> RunOutcome:
    return RunOutcome(
        artifact_path="/artifacts/p",
        storage={"prototype_params": 123, "backbone_params": 9000},
        tasks={
            t: TaskOutcome(
                info={
                    "source": "bundled",
                    "text_columns": ["text"],
                    "label_names": ["neg", "pos"],
                    "metrics": ["accuracy"],
                    "main_metric": "accuracy",
                },
                artifact_path=f"/artifacts/p/tasks/{t}",
                mask_bits=64,
                mask_bytes=8,
                density=[0.5, 0.5],
                dev_metrics={"accuracy": 0.6},
                test_metrics={"accuracy": 0.55},
            )
            for t in tasks
        },
        steps=4,
    )


def test_submit_records_and_enqueues(reg):
    job_id = reg.submit_job(SPEC)
    job = reg.get_job(job_id)
    assert job.status == "queued" and job.queue == "propetl" and job.attempts == 0
    assert reg.sent == [(job_id, "propetl", job.celery_task_id)]
    assert job.spec["config"]["max_steps"] == 4
    assert [j.id for j in reg.list_jobs(status="queued")] == [job_id]


def test_bad_spec_refused_before_anything_is_written(reg):
    with pytest.raises(ValidationError, match=r"config\.lr"):
        reg.submit_job({"config": {**SPEC["config"], "lr": 0}})
    assert reg.list_jobs() == [] and reg.sent == []


def test_enqueue_failure_marks_job_failed(db_url, isolated_settings):
    db.upgrade(db_url)

    def broken(*_):
        raise ConnectionError("broker down")

    registry = Registry(db_url, enqueue=broken)
    with pytest.raises(ConnectionError):
        registry.submit_job(SPEC)
    job = registry.list_jobs()[0]
    assert job.status == "failed" and "broker down" in job.error


def test_claim_is_exclusive_even_under_races(reg):
    job_id = reg.submit_job(SPEC)
    claims = []
    threads = [
        threading.Thread(target=lambda i=i: claims.append(reg.claim_job(job_id, host=f"h{i}")))
        for i in range(6)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    won = [c for c in claims if c is not None]
    assert len(won) == 1 and won[0].attempt == 1
    job = reg.get_job(job_id)
    assert job.status == "running" and job.started_at is not None and job.heartbeat_at is not None


def test_stale_running_job_can_be_reclaimed_and_old_attempt_is_fenced(reg, monkeypatch):
    job_id = reg.submit_job(SPEC)
    first = reg.claim_job(job_id, host="a")
    assert reg.claim_job(job_id, host="b") is None  # alive elsewhere
    monkeypatch.setattr(reg.settings, "reaper_timeout", 0.2)
    time.sleep(0.4)
    second = reg.claim_job(job_id, host="b")
    assert second is not None and second.attempt == 2
    assert reg.heartbeat(job_id, first.attempt) == "lost"
    assert reg.finish_job(job_id, first.attempt, _outcome()) is None
    assert reg.heartbeat(job_id, second.attempt) == "ok"


def test_metric_points_are_idempotent(reg):
    job_id = reg.submit_job(SPEC)
    points = [
        Point(1, "train", "loss", 0.9),
        Point(2, "train", "loss", 0.8),
        Point(2, "dev", "accuracy", 0.5, task="rotten_tomatoes"),
    ]
    reg.add_metric_points(job_id, points)
    reg.add_metric_points(job_id, [*points, Point(2, "train", "loss", 0.7)])  # a resume re-reports
    assert reg.count_metric_points(job_id) == 3
    series = reg.metric_series(job_id)
    assert series[("", "train", "loss")] == [(1, 0.9), (2, 0.7)]
    assert series[("rotten_tomatoes", "dev", "accuracy")] == [(2, 0.5)]
    assert list(reg.metric_series(job_id, split="dev")) == [("rotten_tomatoes", "dev", "accuracy")]


def test_best_dev_metrics_of_a_job_list_in_one_query(reg):
    from sqlalchemy import event

    two, one, none = (reg.submit_job(SPEC) for _ in range(3))
    # the best evaluation by mean over tasks (0.7 at step 4), not the best single value (0.9)
    reg.add_metric_points(
        two,
        [
            Point(2, "dev", "main", 0.9, task="a"),
            Point(2, "dev", "main", 0.1, task="b"),
            Point(4, "dev", "main", 0.6, task="a"),
            Point(4, "dev", "main", 0.8, task="b"),
            Point(4, "dev", "accuracy", 1.0, task="a"),
            Point(4, "test", "main", 1.0, task="a"),
        ],
    )
    reg.add_metric_points(one, [Point(1, "dev", "main", 0.25, task="a")])
    reg.add_metric_points(none, [Point(1, "train", "loss", 0.5)])
    statements: list[str] = []

    def record(conn, cursor, statement, *rest):
        statements.append(statement)

    event.listen(reg.engine, "before_cursor_execute", record)
    try:
        best = reg.best_dev_metrics([two, one, none])
    finally:
        event.remove(reg.engine, "before_cursor_execute", record)
    assert best.keys() == {two, one}
    assert best[two] == pytest.approx(0.7) and best[one] == pytest.approx(0.25)
    assert len([q for q in statements if "metric_points" in q]) == 1, statements
    assert reg.best_dev_metrics([]) == {}


def test_progress_and_finish_register_results_once(reg):
    job_id = reg.submit_job(SPEC)
    claim = reg.claim_job(job_id, host="w")
    reg.report_progress(job_id, claim.attempt, step=2, total_steps=4, phase="train")
    assert reg.get_job(job_id).progress == 0.5
    uid = reg.finish_job(job_id, claim.attempt, _outcome())
    job = reg.get_job(job_id)
    assert job.status == "succeeded" and job.progress == 1.0 and job.finished_at
    assert job.prototype is not None and job.prototype.uid == uid
    proto = reg.get_prototype(uid)
    assert proto.backbone.name == "tiny-bert" and proto.prototype_params == 123
    assert proto.petl_kind == "adapter" and proto.config["keep"] == 0.5
    [mask] = proto.mask_sets
    assert mask.task.name == "rotten_tomatoes" and mask.mask_bits == 64 and mask.keep_ratio == 0.5
    assert reg.list_tasks()[0].label_names == ["neg", "pos"]
    assert mask.task_info["label_names"] == ["neg", "pos"]  # the run's own
    # the same job cannot register a second result
    assert reg.finish_job(job_id, claim.attempt, _outcome()) is None
    assert reg.claim_job(job_id, host="w2") is None
    assert len(reg.list_prototypes()) == 1


def test_two_jobs_share_backbone_and_task_rows(reg):
    for _ in range(2):
        job_id = reg.submit_job(SPEC)
        claim = reg.claim_job(job_id, host="w")
        reg.finish_job(job_id, claim.attempt, _outcome())
    assert len(reg.list_backbones()) == 1 and len(reg.list_tasks()) == 1
    assert len(reg.list_mask_sets(task="rotten_tomatoes")) == 2


def test_an_uploaded_tasks_labels_stay_with_each_run_not_the_shared_row(reg):
    """Two users' uploads may share a task name: each mask set keeps its own run's labels and
    sizes, and the one task row of that name holds neither."""
    runs = {}
    for owner, labels in (("alice", ["yak", "zebra"]), ("bob", ["cat", "dog", "eel"])):
        job_id = reg.submit_job({**SPEC, "owner": owner})
        claim = reg.claim_job(job_id, host="w")
        outcome = _outcome(("reviews",))
        outcome.tasks["reviews"].info.update(
            source="file", label_names=labels, sizes={"train": len(labels)}
        )
        runs[owner] = reg.finish_job(job_id, claim.attempt, outcome)
    for owner, labels in (("alice", ["yak", "zebra"]), ("bob", ["cat", "dog", "eel"])):
        [mask] = reg.get_prototype(runs[owner]).mask_sets
        assert mask.task_info["label_names"] == labels
        assert mask.task_info["sizes"] == {"train": len(labels)}
    [row] = reg.list_tasks()
    assert row.name == "reviews" and row.label_names is None and row.sizes is None


def test_a_mask_set_from_before_0005_reads_its_labels_from_its_own_folder(reg, tmp_path):
    """Rows registered before `task_info` was kept: the task folder's task.json, never the
    shared row."""
    import json

    from sqlalchemy import update

    from app import views
    from app.models import MaskSet

    job_id = reg.submit_job(SPEC)
    claim = reg.claim_job(job_id, host="w")
    outcome = _outcome()
    folder = tmp_path / "tasks" / "rotten_tomatoes"
    folder.mkdir(parents=True)
    (folder / "task.json").write_text(json.dumps({"task": {"label_names": ["bad", "good"]}}))
    outcome.tasks["rotten_tomatoes"].artifact_path = str(folder)
    uid = reg.finish_job(job_id, claim.attempt, outcome)
    with reg._tx() as s:
        s.execute(update(MaskSet).values(task_info=None))
    [mask] = reg.get_prototype(uid).mask_sets
    assert mask.task_info is None and mask.task.label_names == ["neg", "pos"]
    assert views.mask_set_summary(mask)["label_names"] == ["bad", "good"]
    folder.joinpath("task.json").unlink()
    assert views.mask_set_summary(mask)["label_names"] is None


def test_a_prototype_lists_its_tasks_in_the_jobs_order(reg):
    """Not in the order the task rows were made (an older task would come first)."""
    for tasks in (
        ("tweet_sentiment", "bbc_news"),
        ("bbc_news", "rotten_tomatoes", "tweet_sentiment"),
    ):
        spec = {**SPEC, "config": {**SPEC["config"], "tasks": list(tasks)}}
        job_id = reg.submit_job(spec)
        claim = reg.claim_job(job_id, host="w")
        uid = reg.finish_job(job_id, claim.attempt, _outcome(tasks))
        assert [m.task.name for m in reg.get_prototype(uid).mask_sets] == list(tasks)


def test_delete_mask_set(reg, tmp_path):
    job_id = reg.submit_job(SPEC)
    claim = reg.claim_job(job_id, host="w")
    outcome = _outcome()
    folder = tmp_path / "masks"
    folder.mkdir()
    outcome.tasks["rotten_tomatoes"].artifact_path = str(folder)
    uid = reg.finish_job(job_id, claim.attempt, outcome)
    [mask] = reg.list_mask_sets(prototype_uid=uid)
    reg.delete_mask_set(mask.id)
    assert reg.list_mask_sets() == [] and not folder.exists()
    assert reg.get_prototype(uid).mask_sets == []


def test_cancel_queued_running_and_finished(reg):
    queued = reg.submit_job(SPEC)
    assert reg.request_cancel(queued).status == "cancelled"
    assert reg.claim_job(queued, host="w") is None
    running = reg.submit_job(SPEC)
    claim = reg.claim_job(running, host="w")
    assert reg.request_cancel(running).cancel_requested
    assert reg.cancel_requested(running)
    assert reg.heartbeat(running, claim.attempt) == "cancel"
    assert reg.mark_cancelled(running, claim.attempt, step=2)
    job = reg.get_job(running)
    assert job.status == "cancelled" and not job.cancel_requested
    with pytest.raises(InvalidStateError):
        reg.request_cancel(running)


def test_fail_and_retry(reg):
    job_id = reg.submit_job(SPEC)
    claim = reg.claim_job(job_id, host="w")
    assert reg.fail_job(job_id, "RuntimeError: boom", attempt=claim.attempt)
    job = reg.get_job(job_id)
    assert job.status == "failed" and job.error == "RuntimeError: boom"
    with pytest.raises(InvalidStateError):
        reg.retry(reg.submit_job(SPEC))  # a queued job
    retried = reg.retry(job_id)
    assert retried.status == "queued" and retried.error is None
    assert reg.sent[-1] == (job_id, "propetl", retried.celery_task_id)
    assert reg.claim_job(job_id, host="w").attempt == 2


def test_reaper_requeues_then_fails(reg, monkeypatch):
    monkeypatch.setattr(reg.settings, "max_attempts", 2)
    job_id = reg.submit_job(SPEC)
    reg.claim_job(job_id, host="dead")
    assert reg.reap_stale_jobs(timeout=60) == []  # heartbeat is fresh
    time.sleep(0.3)
    assert (
        reg.reap_stale_jobs(timeout=0.1, active=lambda: {reg.get_job(job_id).celery_task_id}) == []
    )
    assert reg.reap_stale_jobs(timeout=0.1) == [(job_id, "requeued")]
    job = reg.get_job(job_id)
    assert job.status == "queued" and "lost" in job.error
    assert reg.sent[-1] == (job_id, "propetl", job.celery_task_id)
    reg.claim_job(job_id, host="dead-again")
    time.sleep(0.3)
    assert reg.reap_stale_jobs(timeout=0.1) == [(job_id, "failed")]
    assert "gave up after 2 attempts" in reg.get_job(job_id).error


def test_reaper_honours_a_pending_cancel(reg):
    job_id = reg.submit_job(SPEC)
    reg.claim_job(job_id, host="dead")
    reg.request_cancel(job_id)
    time.sleep(0.3)
    assert reg.reap_stale_jobs(timeout=0.1) == [(job_id, "cancelled")]

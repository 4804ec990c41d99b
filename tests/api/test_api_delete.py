"""Deleting a task's masks, on a prototype of its own (the shared one stays intact)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def spare(stack):
    from tests.dashboard_stack import TINY
    from worker.runner import execute

    registry = stack.registry
    job_id = registry.submit_job({"config": {**TINY, "max_steps": 2}})
    assert execute(job_id, registry=registry) == "succeeded"
    return registry.prototype_for_job(job_id)


def test_delete_a_tasks_masks(client, spare):
    path = next(m.artifact_path for m in spare.mask_sets if m.task.name == "bbc_news")
    assert (
        client.post(
            "/api/predict", json={"prototype": spare.uid, "task": "bbc_news", "text": "x"}
        ).status_code
        == 200
    )
    assert client.delete(f"/api/prototypes/{spare.uid}/masks/bbc_news").status_code == 204
    tasks = [m["task"] for m in client.get(f"/api/prototypes/{spare.uid}/masks").json()]
    assert tasks == ["rotten_tomatoes"]
    from pathlib import Path

    assert not Path(path).exists()
    reply = client.post(
        "/api/predict", json={"prototype": spare.uid, "task": "bbc_news", "text": "x"}
    )
    assert reply.status_code == 422  # the engine reloaded without the deleted task
    assert client.delete(f"/api/prototypes/{spare.uid}/masks/bbc_news").status_code == 404


def test_figures_count_the_tasks_left_and_none_without_tasks(client, stack, tmp_path):
    """The storage report is written for the job's tasks; deleting tasks recounts it, and a
    prototype with no task left has no ratio against the ordinary modules (not a stale one)."""
    from propetl.config import PropetlConfig
    from propetl.storage import storage_report_for_config
    from propetl.tiny import tiny_config
    from tests.dashboard_stack import TINY
    from worker.runner import execute

    registry = stack.registry
    job_id = registry.submit_job({"config": {**TINY, "max_steps": 2}})
    assert execute(job_id, registry=registry) == "succeeded"
    proto = registry.prototype_for_job(job_id)
    uid = proto.uid

    def seen() -> tuple[dict, dict]:
        listed = next(p for p in client.get("/api/prototypes").json() if p["uid"] == uid)
        return listed, client.get(f"/api/prototypes/{uid}").json()

    listed, two = seen()
    assert two["storage"]["num_tasks"] == 2 and 0 < listed["ratio_to_baseline"] < 1
    assert client.delete(f"/api/prototypes/{uid}/tasks/bbc_news").status_code == 204
    listed, one = seen()
    tiny_config("bert", vocab_size=30522).save_pretrained(tmp_path)
    fresh = storage_report_for_config(str(tmp_path), PropetlConfig.from_dict(proto.config), 1)
    assert (
        listed["ratio_to_baseline"]
        == one["storage"]["ratio_to_baseline"]
        == pytest.approx(fresh.ratio_to_baseline)
    )
    assert one["storage"]["num_tasks"] == 1
    assert set(one["storage"]["head_params_per_task"]) == {"rotten_tomatoes"}
    assert not [k for k in one["storage"]["disk_bytes"] if "bbc_news" in k]
    assert client.delete(f"/api/prototypes/{uid}/tasks/rotten_tomatoes").status_code == 204
    listed, none = seen()
    assert listed["tasks"] == none["tasks"] == [] and listed["ratio_to_baseline"] is None
    storage = none["storage"]
    assert storage["ratio_to_baseline"] is None and storage["num_tasks"] == 0
    assert storage["head_params_per_task"] == {} and storage["baseline_fp32_eq"] == 0

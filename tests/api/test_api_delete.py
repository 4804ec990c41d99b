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
    assert client.post("/api/predict", json={"prototype": spare.uid, "task": "bbc_news",
                                             "text": "x"}).status_code == 200
    assert client.delete(f"/api/prototypes/{spare.uid}/masks/bbc_news").status_code == 204
    tasks = [m["task"] for m in client.get(f"/api/prototypes/{spare.uid}/masks").json()]
    assert tasks == ["rotten_tomatoes"]
    from pathlib import Path

    assert not Path(path).exists()
    reply = client.post("/api/predict", json={"prototype": spare.uid, "task": "bbc_news",
                                              "text": "x"})
    assert reply.status_code == 422  # the engine reloaded without the deleted task
    assert client.delete(f"/api/prototypes/{spare.uid}/masks/bbc_news").status_code == 404

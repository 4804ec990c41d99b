"""Tasks of a prototype over the REST API: add (a job that grows it), list in order, delete;
the Playground engine answers an added task without a restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from propetl.continual import file_hashes

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def grown(stack):
    from tests.dashboard_stack import TINY
    from worker.runner import execute

    registry = stack.registry
    job_id = registry.submit_job({"config": {**TINY, "tasks": ["bbc_news"], "max_steps": 2}})
    assert execute(job_id, registry=registry) == "succeeded"
    return registry.prototype_for_job(job_id), job_id


def test_add_list_predict_and_delete_tasks(client, grown):
    from app.registry import get_registry
    from worker.runner import execute

    proto, first_job = grown
    uid = proto.uid
    assert (
        client.post(
            "/api/predict", json={"prototype": uid, "task": "bbc_news", "text": "shares fell"}
        ).status_code
        == 200
    )
    before = file_hashes(proto.artifact_path)
    # conflicts are refused with the fields named; names already there too
    reply = client.post(
        f"/api/prototypes/{uid[:8]}/tasks",
        json={"tasks": ["rotten_tomatoes"], "config": {"propetl": {"keep": 0.1}}},
    )
    assert reply.status_code == 409 and "propetl.keep: given 0.1" in reply.text
    reply = client.post(f"/api/prototypes/{uid}/tasks", json={"tasks": ["bbc_news"]})
    assert reply.status_code == 409 and "already on the prototype" in reply.text
    assert "with replace" in reply.text and "--replace" not in reply.text  # this body's field
    reply = client.post(
        "/api/jobs", json={"base_prototype": uid, "config": {"tasks": ["bbc_news"]}}
    )
    assert reply.status_code == 409 and "with replace_tasks" in reply.text  # the spec's field
    # add rotten_tomatoes: a job; run it here (the API only queues)
    reply = client.post(
        f"/api/prototypes/{uid}/tasks",
        json={
            "tasks": ["rotten_tomatoes"],
            "name": "grow",
            "config": {"max_steps": 2, "max_examples": 16, "batch_size": 8, "eval_every": 2},
        },
    )
    assert reply.status_code == 201, reply.text
    job_id = reply.json()["id"]
    assert execute(job_id, registry=get_registry()) == "succeeded", (
        get_registry().get_job(job_id).error
    )
    tasks = client.get(f"/api/prototypes/{uid}/tasks").json()
    assert [(t["position"], t["task"], t["job_id"]) for t in tasks] == [
        (0, "bbc_news", first_job),
        (1, "rotten_tomatoes", job_id),
    ]
    assert tasks[1]["job_name"] == "grow" and tasks[1]["mask_bytes"] > 0
    assert tasks[1]["test_metrics"]["accuracy"] >= 0 and "artifact_path" not in tasks[1]
    after = file_hashes(proto.artifact_path)
    assert {k: v for k, v in after.items() if k in before} == before
    # the engine sees the new task without a restart
    reply = client.post(
        "/api/predict", json={"prototype": uid, "task": "rotten_tomatoes", "text": "a warm film"}
    )
    assert reply.status_code == 200, reply.text
    # a job spec naming the prototype works too (POST /api/jobs)
    reply = client.post(
        "/api/jobs",
        json={
            "base_prototype": uid,
            "config": {"tasks": ["rotten_tomatoes"], "propetl": {"bottleneck": 3}},
        },
    )
    assert reply.status_code == 409 and "propetl.bottleneck" in reply.text
    # delete the added task: its folder goes, the old ones stay byte-identical
    assert client.delete(f"/api/prototypes/{uid}/tasks/rotten_tomatoes").status_code == 204
    assert [t["task"] for t in client.get(f"/api/prototypes/{uid}/tasks").json()] == ["bbc_news"]
    assert file_hashes(proto.artifact_path) == before
    assert not (Path(proto.artifact_path) / "tasks" / "rotten_tomatoes").exists()


def test_problems_point_at_the_routes_own_fields(client, grown):
    """`tasks` is at the top of this route's body, not in a job spec's `config`."""
    reply = client.post(
        f"/api/prototypes/{grown[0].uid}/tasks",
        json={"tasks": ["rotten_tomatoes", "no_such_task"], "config": {"lr": -1}},
    )
    assert reply.status_code == 422, reply.text
    assert {tuple(e["loc"]) for e in reply.json()["detail"]} == {
        ("body", "tasks", 1),
        ("body", "config", "lr"),
    }


def test_others_cannot_see_or_grow_a_prototype(auth_client, grown):
    from tests.dashboard_stack import token_for

    uid = grown[0].uid
    headers = token_for(auth_client, "bob", "builder")
    assert auth_client.get(f"/api/prototypes/{uid}/tasks", headers=headers).status_code == 404
    reply = auth_client.post(
        f"/api/prototypes/{uid}/tasks", headers=headers, json={"tasks": ["rotten_tomatoes"]}
    )
    assert reply.status_code == 404
    reply = auth_client.post(
        "/api/jobs",
        headers=headers,
        json={"base_prototype": uid, "config": {"tasks": ["rotten_tomatoes"]}},
    )
    assert reply.status_code == 404, reply.text

"""REST API: jobs, catalog and the OpenAPI schema (login off)."""

from __future__ import annotations

import pytest

TINY_SPEC = {
    "name": "api job",
    "config": {
        "backbone": "tiny-bert",
        "tasks": ["rotten_tomatoes"],
        "max_examples": 16,
        "max_steps": 2,
    },
}


def test_openapi_lists_every_endpoint(client):
    paths = client.get("/api/openapi.json").json()["paths"]
    for path in (
        "/api/jobs",
        "/api/jobs/{job_id}",
        "/api/jobs/{job_id}/cancel",
        "/api/jobs/{job_id}/retry",
        "/api/tasks",
        "/api/prototypes",
        "/api/prototypes/{uid}/masks",
        "/api/predict",
        "/api/auth/token",
    ):
        assert path in paths
    assert client.get("/api/docs").status_code == 200


def test_openapi_declares_the_token_and_what_routes_really_answer(client):
    schema = client.get("/api/openapi.json").json()
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    paths = schema["paths"]
    assert paths["/api/jobs/{job_id}"]["get"]["security"]
    for path, kind in [
        ("/api/prototypes/{uid}/download", "application/zip"),
        ("/api/prototypes/{uid}/masks/{task}/download", "application/zip"),
        ("/api/prototypes/{uid}/masks/{task}/export", "application/zip"),
        ("/api/jobs/{job_id}/metrics.csv", "text/csv"),
        ("/api/jobs/{job_id}/labels", "text/csv"),
    ]:
        assert list(paths[path]["get"]["responses"]["200"]["content"]) == [kind], path
    health = paths["/api/health"]["get"]
    assert set(health["responses"]) == {"200", "503"} and "security" not in health
    login = paths["/api/auth/token"]["post"]
    assert set(login["responses"]) == {"200", "401", "409", "422", "429"}
    assert "security" not in login
    # 429 only where logins are counted, 503 only where a serving queue can be full
    assert "503" in paths["/api/predict"]["post"]["responses"]
    job = paths["/api/jobs/{job_id}"]["get"]["responses"]
    assert {"401", "403", "404"} <= set(job) and not {"429", "503"} & set(job)


def test_catalog(client):
    tasks = {t["name"]: t for t in client.get("/api/tasks").json()}
    assert {"rotten_tomatoes", "bbc_news", "sst2"} <= set(tasks)
    assert tasks["rotten_tomatoes"]["trained"] is True
    assert "tiny-bert" in {b["name"] for b in client.get("/api/backbones").json()}


def test_submit_list_get_cancel_retry(client):
    reply = client.post("/api/jobs", json=TINY_SPEC)
    assert reply.status_code == 201, reply.text
    job = reply.json()
    assert job["status"] == "queued" and job["owner"] == "local"
    assert job["id"] in [j["id"] for j in client.get("/api/jobs").json()]
    assert [j["id"] for j in client.get("/api/jobs", params={"status": "queued"}).json()]
    detail = client.get(f"/api/jobs/{job['id']}").json()
    assert detail["spec"]["config"]["max_steps"] == 2
    assert client.post(f"/api/jobs/{job['id']}/cancel").json()["status"] == "cancelled"
    again = client.post(f"/api/jobs/{job['id']}/cancel")
    assert again.status_code == 409 and "already cancelled" in again.json()["detail"]
    assert client.post(f"/api/jobs/{job['id']}/retry").json()["status"] == "queued"
    client.post(f"/api/jobs/{job['id']}/cancel")


def test_finished_job_has_curves_and_log(client, stack):
    detail = client.get(f"/api/jobs/{stack.job_id}").json()
    assert detail["status"] == "succeeded" and detail["prototype"] == stack.uid
    names = {(m["split"], m["name"]) for m in detail["metrics"]}
    assert ("train", "loss") in names and ("dev", "main") in names
    assert detail["best_metric"] is not None
    log = client.get(f"/api/jobs/{stack.job_id}/log").json()["log"]
    assert "train  loss" in log and "eval" in log


def test_bad_spec_is_422_naming_the_field(client):
    reply = client.post("/api/jobs", json={"config": {**TINY_SPEC["config"], "lr": -1}})
    assert reply.status_code == 422
    [error] = reply.json()["detail"]
    assert error["loc"][-2:] == ["config", "lr"] and "lr must be in [1e-08, 10]" in error["msg"]
    reply = client.post(
        "/api/jobs", json={"config": {"backbone": "tiny-bert", "tasks": ["no_such_task"]}}
    )
    assert reply.status_code == 422
    assert reply.json()["detail"][0]["loc"][-3:] == ["config", "tasks", 0]
    assert client.post("/api/jobs", json={"colour": "red"}).status_code == 422


def test_unknown_ids_are_404(client):
    assert client.get("/api/jobs/99999").status_code == 404
    assert client.post("/api/jobs/99999/cancel").status_code == 404
    assert client.post("/api/jobs/99999/retry").status_code == 404
    assert client.get("/api/jobs/99999/log").status_code == 404


@pytest.mark.parametrize(
    ("method", "url", "field"),
    [
        ("get", "/api/jobs/99999999999999999999999", "job_id"),
        ("get", "/api/jobs/9223372036854775808", "job_id"),
        ("post", "/api/jobs/99999999999999999999/cancel", "job_id"),
        ("get", "/api/jobs/99999999999999999999/labels", "job_id"),
        ("get", "/api/jobs/0", "job_id"),
        ("get", "/api/sweeps/99999999999999999999", "sweep_id"),
        ("get", "/api/jobs?sweep=99999999999999999999", "sweep"),
        ("get", "/api/jobs?status=bogus", "status"),
    ],
)
def test_out_of_range_ids_and_unknown_statuses_are_422_naming_the_field(client, method, url, field):
    reply = client.request(method, url)
    assert reply.status_code == 422, reply.text
    assert [e["loc"][-1] for e in reply.json()["detail"]] == [field]
    if field == "status":
        assert "succeeded" in reply.text and "cancelled" in reply.text
    assert client.get("/api/jobs/9223372036854775807").status_code == 404  # the largest id


def test_job_notes_refuse_unknown_fields(client, stack):
    reply = client.patch(f"/api/jobs/{stack.job_id}", json={"bogus": 1})
    assert reply.status_code == 422 and reply.json()["detail"][0]["loc"] == ["body", "bogus"]
    assert client.patch(f"/api/jobs/{stack.job_id}", json={}).status_code == 200


def test_login_is_off(client):
    assert client.get("/api/auth/me").json() == {"user": "local", "auth_enabled": False}
    reply = client.post("/api/auth/token", json={"username": "a", "password": "b"})
    assert reply.status_code == 409


@pytest.mark.parametrize("body", [{}, {"config": {}}, {"config": {"max_steps": 2}}])
def test_a_spec_without_tasks_is_refused(client, stack, body):
    """A job has no default tasks (the CLI's `jobs submit` refuses an empty file alike)."""
    before = len(stack.registry.list_jobs(limit=1000))
    reply = client.post("/api/jobs", json=body)
    assert reply.status_code == 422, reply.text
    assert "name at least one task" in reply.text
    assert len(stack.registry.list_jobs(limit=1000)) == before

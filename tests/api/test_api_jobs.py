"""REST API: jobs, catalog and the OpenAPI schema (login off)."""

from __future__ import annotations

TINY_SPEC = {"name": "api job", "config": {"backbone": "tiny-bert", "tasks": ["rotten_tomatoes"],
                                           "max_examples": 16, "max_steps": 2}}


def test_openapi_lists_every_endpoint(client):
    paths = client.get("/api/openapi.json").json()["paths"]
    for path in ("/api/jobs", "/api/jobs/{job_id}", "/api/jobs/{job_id}/cancel",
                 "/api/jobs/{job_id}/retry", "/api/tasks", "/api/prototypes",
                 "/api/prototypes/{uid}/masks", "/api/predict", "/api/auth/token"):
        assert path in paths
    assert client.get("/api/docs").status_code == 200


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
    assert error["loc"][-2:] == ["config", "lr"] and "lr must be > 0" in error["msg"]
    reply = client.post("/api/jobs", json={"config": {"backbone": "tiny-bert",
                                                      "tasks": ["no_such_task"]}})
    assert reply.status_code == 422
    assert reply.json()["detail"][0]["loc"][-3:] == ["config", "tasks", 0]
    assert client.post("/api/jobs", json={"colour": "red"}).status_code == 422


def test_unknown_ids_are_404(client):
    assert client.get("/api/jobs/99999").status_code == 404
    assert client.post("/api/jobs/99999/cancel").status_code == 404
    assert client.post("/api/jobs/99999/retry").status_code == 404
    assert client.get("/api/jobs/99999/log").status_code == 404


def test_login_is_off(client):
    assert client.get("/api/auth/me").json() == {"user": "local", "auth_enabled": False}
    reply = client.post("/api/auth/token", json={"username": "a", "password": "b"})
    assert reply.status_code == 409

"""The dashboard as `gradio_client` sees it (issue 15, defect 9): three named endpoints with
typed, named parameters, against the real server and its worker; the page's own events are
not callable."""

from __future__ import annotations

import time

import httpx
import pytest

pytestmark = pytest.mark.browser  # shares the browser tests' server process


@pytest.fixture(scope="module")
def client(server):
    from gradio_client import Client

    return Client(server, verbose=False)


def test_only_the_named_surface_is_listed(client):
    info = client.view_api(return_format="dict", print_info=False)
    assert set(info["named_endpoints"]) == {"/launch", "/list_jobs", "/predict"}
    params = {p["parameter_name"] for p in info["named_endpoints"]["/launch"]["parameters"]}
    assert {"tasks", "backbone", "name", "config", "queue"} <= params
    with pytest.raises(Exception, match=r"launch_job|api_name|not"):
        client.predict(api_name="/launch_job")


def test_launch_list_and_predict_as_a_client(client, server):
    job = client.predict(
        tasks=["rotten_tomatoes"],
        backbone="tiny-bert",
        name="from a client",
        config={"max_steps": 2, "max_examples": 16, "batch_size": 8, "eval_every": 2},
        api_name="/launch",
    )
    assert job["name"] == "from a client" and job["status"] == "queued"
    listed = client.predict(limit=5, api_name="/list_jobs")
    assert job["id"] in [j["id"] for j in listed]
    deadline = time.monotonic() + 180
    while True:
        done = client.predict(status="succeeded", limit=50, api_name="/list_jobs")
        if job["id"] in [j["id"] for j in done]:
            break
        assert time.monotonic() < deadline, "the job did not succeed in 180 s"
        time.sleep(2)
    rest = httpx.get(f"{server}/api/jobs/{job['id']}").json()
    uid = rest["prototype"]
    [mine] = [j for j in done if j["id"] == job["id"]]
    # the same best dev figure as the REST API gives
    assert mine["best_metric"] is not None and mine["best_metric"] == rest["best_metric"]
    answer = client.predict(
        prototype=uid[:8], task="rotten_tomatoes", text="a warm and funny film", api_name="/predict"
    )
    assert answer["prototype"] == uid
    assert answer["results"][0]["task"] == "rotten_tomatoes"
    assert set(answer["results"][0]["scores"]) == {"negative", "positive"}
    with pytest.raises(Exception, match="no prototype"):
        client.predict(prototype="ffffffff", task="rotten_tomatoes", text="x", api_name="/predict")
    with pytest.raises(Exception, match="max_steps"):
        client.predict(tasks=["rotten_tomatoes"], config={"max_steps": -1}, api_name="/launch")
    with pytest.raises(Exception, match=r"max_steps.*unknown task 'nope'"):  # all at once
        client.predict(tasks=["nope"], config={"max_steps": -1}, api_name="/launch")

"""A real `propetl serve` answering concurrent predicts for a 1,000-task tiny prototype:
every request gets its own task's answer (the same as when it is sent alone), requests are
batched across tasks, and a full queue answers 503 with Retry-After."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from bench.load import Server, free_port
from bench.serve_load import make_prototypes, task_names

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
MANY = 1000


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("serve") / "data"
    uid = make_prototypes(data_dir, "tiny-bert", [MANY])[MANY]
    server = Server(
        data_dir,
        free_port(),
        worker=False,
        PROPETL_SERVE_MAX_QUEUE="8",
        PROPETL_SERVE_MAX_BATCH="16",
        PROPETL_SERVE_MAX_WAIT_MS="10",
        PROPETL_SERVE_TASK_CACHE="32",
    ).start()
    try:
        yield server, uid
    finally:
        server.stop()


def post(url: str, body: dict, retries: int = 200) -> httpx.Response:
    """A client that honours 503 + Retry-After (here shortened to 50 ms)."""
    for _ in range(retries):
        reply = httpx.post(f"{url}/api/predict", json=body, timeout=120)
        if reply.status_code != 503:
            return reply
        assert reply.headers["retry-after"] == "1"
        time.sleep(0.05)
    raise AssertionError("still refused")


def test_concurrent_requests_get_their_own_tasks_answers(served):
    server, uid = served
    tasks = task_names(MANY)[::16]  # 63 tasks spread over the 1,000
    text = {t: f"text number {i} for {t}" for i, t in enumerate(tasks)}
    alone = {}
    for task in tasks:
        reply = post(server.url, {"prototype": uid, "task": task, "text": text[task]})
        assert reply.status_code == 200, reply.text
        alone[task] = reply.json()["results"][0]
        assert set(alone[task]["scores"]) == {f"{task}:a", f"{task}:b"}
    calls = [tasks[(7 * i) % len(tasks)] for i in range(4 * len(tasks))]
    with ThreadPoolExecutor(24) as pool:
        replies = list(
            pool.map(
                lambda t: post(server.url, {"prototype": uid, "task": t, "text": text[t]}), calls
            )
        )
    batched = 0
    for task, reply in zip(calls, replies, strict=True):
        assert reply.status_code == 200, reply.text
        body = reply.json()
        [row] = body["results"]
        assert row["task"] == task and row["label"] == alone[task]["label"], (row, alone[task])
        for name, p in alone[task]["scores"].items():
            assert row["scores"][name] == pytest.approx(p, abs=1e-4)
        batched += body["batch"]["requests"] > 1
    assert batched > len(calls) // 4, "concurrent requests were not batched together"
    # one request naming many tasks: the same answers as each alone
    mixed = post(
        server.url, {"prototype": uid, "items": [{"task": t, "text": text[t]} for t in tasks]}
    ).json()
    assert [r["label"] for r in mixed["results"]] == [alone[t]["label"] for t in tasks]


def test_full_queue_answers_503_with_retry_after(served):
    server, uid = served
    names = task_names(MANY)[:240]
    body = {"prototype": uid, "items": [{"task": t, "text": "many at once"} for t in names]}

    def once(_: int) -> httpx.Response:
        return httpx.post(f"{server.url}/api/predict", json=body, timeout=300)

    with ThreadPoolExecutor(24) as pool:
        replies = list(pool.map(once, range(24)))
    codes = [r.status_code for r in replies]
    assert set(codes) <= {200, 503}, codes
    refused = [r for r in replies if r.status_code == 503]
    assert refused, "24 concurrent 240-text requests never filled a queue of 8"
    assert codes.count(200) >= 8  # at least the queue's worth was accepted and answered
    for reply in refused:
        assert reply.headers["retry-after"] == "1"
        assert "PROPETL_SERVE_MAX_QUEUE=8" in reply.json()["detail"]
    for reply in replies:
        if reply.status_code == 200:
            results = reply.json()["results"]
            assert [r["task"] for r in results] == names

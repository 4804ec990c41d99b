"""Batch prediction: a file labelled by a real worker process, submitted and downloaded
through the REST API; each row gets its own task's answer."""

from __future__ import annotations

import csv
import io
import json

import pytest

from bench.serve_load import register_many_task_prototype, task_names

pytestmark = pytest.mark.timeout(300)


def _client():
    from fastapi.testclient import TestClient

    from app.auth import get_auth
    from app.server import create_app

    return TestClient(create_app(get_auth(), ui=False))


def test_a_worker_labels_an_uploaded_file(embedded_stack, monkeypatch):
    from tests.dashboard_stack import reset_caches

    for key, value in {
        "PROPETL_SERVE_MAX_BATCH": "16",
        "PROPETL_DEFAULT_QUEUE": embedded_stack.queue,
    }.items():
        monkeypatch.setenv(key, value)
        embedded_stack.env[key] = value
    reset_caches()
    registry = embedded_stack.registry
    uid = register_many_task_prototype(registry, "tiny-bert", 12)
    tasks = task_names(12)
    rows = [{"text": f"review number {i}", "task": tasks[(5 * i) % 12]} for i in range(150)]
    rows[7]["text"] = ""
    rows[9]["task"] = "nope"
    rows[11]["task"] = ""  # the default task
    body = io.StringIO()
    writer = csv.DictWriter(body, ["text", "task"])
    writer.writeheader()
    writer.writerows(rows)
    with _client() as client:
        reply = client.post(
            f"/api/prototypes/{uid}/label",
            data={"task": tasks[3]},
            files={"file": ("reviews.csv", body.getvalue().encode(), "text/csv")},
        )
        assert reply.status_code == 201, reply.text
        job_id = reply.json()["id"]
        early = client.get(f"/api/jobs/{job_id}/labels")
        assert early.status_code == 409 and "queued" in early.json()["detail"]
        embedded_stack.start_worker()
        job = embedded_stack.wait_final(job_id, timeout=180)
        assert job.status == "succeeded", f"{job.error}\n{embedded_stack.tail()}"
        assert job.step == job.total_steps == 150 and job.progress == 1.0
        reply = client.get(f"/api/jobs/{job_id}/labels")
        assert reply.status_code == 200, reply.text
        assert reply.headers["content-type"].startswith("text/csv")
        out = list(csv.DictReader(io.StringIO(reply.text)))
        reference = client.post(
            "/api/predict",
            json={
                "prototype": uid,
                "items": [
                    {"task": r["task"] or tasks[3], "text": r["text"]}
                    for i, r in enumerate(rows)
                    if i not in (7, 9)
                ],
            },
        ).json()["results"]
        # a wrong file is refused at once, naming the problem
        bad = client.post(
            f"/api/prototypes/{uid}/label",
            files={"file": ("x.csv", b"sentence\nhello\n", "text/csv")},
        )
        assert bad.status_code == 422 and "'text'" in bad.json()["detail"]
    assert [int(r["row"]) for r in out] == list(range(1, 151))
    assert out[7]["error"] == "empty 'text'" and out[9]["error"] == "unknown task 'nope'"
    assert out[11]["task"] == tasks[3]
    labelled = [r for i, r in enumerate(out) if i not in (7, 9)]
    for row, ref in zip(labelled, reference, strict=True):
        assert row["task"] == ref["task"] and row["label"] == ref["label"]
        probs = json.loads(row["probabilities"])
        assert set(probs) == {f"{row['task']}:a", f"{row['task']}:b"}
        assert probs[row["label"]] == pytest.approx(ref["scores"][row["label"]], abs=1e-4)


def test_the_playground_section_labels_a_jsonl_file(embedded_stack, monkeypatch, tmp_path):
    from app.ui import labelling
    from tests.dashboard_stack import reset_caches

    monkeypatch.setenv("PROPETL_DEFAULT_QUEUE", embedded_stack.queue)
    embedded_stack.env["PROPETL_DEFAULT_QUEUE"] = embedded_stack.queue
    reset_caches()
    uid = register_many_task_prototype(embedded_stack.registry, "tiny-bert", 3)
    source = tmp_path / "texts.jsonl"
    source.write_text("".join(json.dumps({"sentence": f"text {i}"}) + "\n" for i in range(40)))
    message, job_id, _ = labelling.submit(uid, "t0001", str(source), "sentence")
    assert job_id and f"job **{job_id}**" in message, message
    assert "queued" in labelling.check(job_id)[0]
    embedded_stack.start_worker()
    embedded_stack.wait_final(job_id, timeout=180)
    status, download = labelling.check(job_id)
    assert "succeeded" in status and "40 / 40 rows" in status, status
    with open(download["value"]) as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 40 and {r["task"] for r in rows} == {"t0001"}
    assert all(r["label"] in ("t0001:a", "t0001:b") and not r["error"] for r in rows)
    # no text column: refused before anything is queued
    message, job_id, _ = labelling.submit(uid, "t0001", str(source), "text")
    assert job_id is None and "no 'text' column" in message

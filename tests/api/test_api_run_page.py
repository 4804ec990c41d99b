"""`GET /api/jobs/{id}/run` and the run page's HTML over the shared tiny two-task run
(issue 15): what the engine records beside the model, read back as the page shows it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def test_run_folder_holds_predictions_losses_and_task_best(stack):
    job = stack.registry.get_job(stack.job_id)
    run = Path(job.run_dir)
    rows = [
        json.loads(x)
        for x in (run / "predictions" / "test" / "rotten_tomatoes.jsonl").read_text().splitlines()
    ]
    assert rows and {"text", "gold", "predicted", "probs"} <= set(rows[0])
    assert abs(sum(rows[0]["probs"].values()) - 1) < 1e-3
    best = json.loads((run / "best" / "per_task.json").read_text())
    assert set(best) == {"rotten_tomatoes", "bbc_news"} and all("step" in v for v in best.values())
    series = stack.registry.metric_series(stack.job_id, split="train")
    per_task = {t for (t, _s, n) in series if n == "loss" and t}
    assert per_task == {"rotten_tomatoes", "bbc_news"}  # a loss curve per task


def test_run_endpoint(client, stack):
    reply = client.get(f"/api/jobs/{stack.job_id}/run")
    assert reply.status_code == 200, reply.text
    view = reply.json()
    assert view["wall_seconds"] > 0 and view["samples_per_second"] > 0
    assert view["step_seconds"] > 0 and view["kept_step"] in (2, 4)
    tasks = {t["task"]: t for t in view["tasks"]}
    rt = tasks["rotten_tomatoes"]
    assert "accuracy" in rt["test"] and rt["best_dev_step"] in (2, 4)
    assert 0.5 <= rt["majority"]["dev"]["accuracy"] <= 1
    report = rt["classification"]
    assert report["labels"] == ["negative", "positive"]
    assert sum(map(sum, report["confusion"])) == report["examples"] == 16
    correct = sum(report["confusion"][i][i] for i in range(2))
    assert abs(correct / 16 - rt["test"]["accuracy"]) < 1e-9  # the same predictions
    wrong = report["worst"]
    assert all(w["gold"] != w["predicted"] for w in wrong)
    confidences = [w["probs"][w["predicted"]] for w in wrong]
    assert confidences == sorted(confidences, reverse=True)
    assert len(tasks["bbc_news"]["classification"]["per_class"]) == 5
    assert client.get("/api/jobs/999999/run").status_code == 404


def test_run_html_shows_the_report(stack):
    from app import runs
    from app.ui.runview import run_html

    job = stack.registry.get_job(stack.job_id)
    page = run_html(runs.run_view(stack.registry, job))
    for text in (
        "wall time",
        "samples/s",
        "kept step",
        "majority",
        "Confusion matrix",
        "Worst misclassified",
        "rotten_tomatoes",
        "bbc_news",
        "precision",
    ):
        assert text in page, text


def test_task_card_endpoint(client):
    reply = client.get(
        "/api/tasks/bbc_news/card", params={"backbone": "tiny-bert", "max_length": 64}
    )
    assert reply.status_code == 200, reply.text
    card = reply.json()
    assert card["task"] == "bbc_news" and len(card["class_balance"]["train"]) == 5
    assert card["tokens"]["max_length"] == 64 and card["tokens"]["truncated_share"] > 0.5
    assert len(card["content_sha256"]) == 64
    assert client.get("/api/tasks/no_such_task/card").status_code == 404


@pytest.mark.parametrize(
    "error",
    [
        FileNotFoundError(2, "No such file or directory", "/srv/secret/uploads/x.csv"),
        OSError("Can't load tokenizer for '/srv/secret/models/x'"),  # as transformers says it
    ],
)
def test_a_card_whose_files_cannot_be_read_names_no_server_path(client, monkeypatch, error):
    from app import datacards

    def unreadable(*args):
        raise error

    monkeypatch.setattr(datacards, "_card", unreadable)
    reply = client.get("/api/tasks/bbc_news/card", params={"backbone": "tiny-bert"})
    assert reply.status_code == 404, reply.text
    assert reply.json()["detail"].startswith("no task 'bbc_news'") and "/srv" not in reply.text


def test_tags_note_search_and_metrics_csv(client, stack):
    job_id = stack.job_id
    reply = client.patch(
        f"/api/jobs/{job_id}",
        json={"tags": ["baseline", " tiny ", "tiny"], "note": "first try on two tasks"},
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["tags"] == ["baseline", "tiny"]
    assert reply.json()["note"] == "first try on two tasks"

    def ids(q: str) -> list[int]:
        found = client.get("/api/jobs", params={"q": q})
        assert found.status_code == 200, found.text
        return [j["id"] for j in found.json()]

    assert job_id in ids("tag:baseline")
    assert job_id in ids("task:bbc_news status:succeeded two")
    assert job_id not in ids("tag:nothing")
    assert job_id not in ids("task:tweet_sentiment")
    assert job_id not in ids("status:failed")
    csv_reply = client.get(f"/api/jobs/{job_id}/metrics.csv")
    assert csv_reply.status_code == 200 and csv_reply.headers["content-type"].startswith("text/csv")
    lines = csv_reply.text.splitlines()
    assert lines[0] == "job,step,split,task,metric,value"
    assert any(",test,rotten_tomatoes,accuracy," in line for line in lines)
    assert any(",train,bbc_news,loss," in line for line in lines)
    assert client.patch(f"/api/jobs/{job_id}", json={"tags": ["x" * 41]}).status_code == 422


def test_csv_cells_are_defused_and_quoted():
    import csv
    import io

    from propetl.csvout import defuse, to_csv

    assert defuse("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert defuse("-2+3") == "'-2+3" and defuse(-0.5) == -0.5
    text = to_csv(("task", "value"), [('a "quoted", text', -0.5), ("@SUM(A1)", 1.0)])
    assert list(csv.reader(io.StringIO(text))) == [
        ["task", "value"],
        ['a "quoted", text', "-0.5"],
        ["'@SUM(A1)", "1.0"],
    ]

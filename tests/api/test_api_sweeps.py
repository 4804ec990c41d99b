"""REST API: a sweep of two tiny jobs (run in this process), its results, and task exports
(the PEFT adapter and the merged model from the API give the ProPETL model's logits)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
import torch

BASE = {
    "config": {
        "backbone": "tiny-bert",
        "tasks": ["rotten_tomatoes"],
        "max_examples": 16,
        "max_steps": 4,
        "batch_size": 8,
        "eval_every": 2,
    }
}


@pytest.fixture(scope="module")
def sweep(client, stack):
    """A sweep petl in {adapter, lora} created through the API; its jobs run here."""
    from worker.runner import execute

    reply = client.post(
        "/api/sweeps", json={"name": "kinds", "base": BASE, "grid": {"petl": ["adapter", "lora"]}}
    )
    assert reply.status_code == 201, reply.text
    created = reply.json()
    for job_id in created["job_ids"]:
        assert execute(job_id, registry=stack.registry) == "succeeded", stack.registry.get_job(
            job_id
        ).error
    return client.get(f"/api/sweeps/{created['id']}").json()


def test_sweep_lists_groups_and_results(client, sweep):
    assert sweep["name"] == "kinds" and sweep["owner"] == "local" and sweep["jobs"] == 2
    assert sweep["grid"] == {"propetl.petl": ["adapter", "lora"]}
    assert sweep["statuses"] == {"succeeded": 2}
    rows = {r["values"]["propetl.petl"]: r for r in sweep["results"]}
    assert set(rows) == {"adapter", "lora"}
    for row in rows.values():
        assert row["task"] == "rotten_tomatoes" and 0 <= row["test"] <= 1
        assert 0 < row["stored_bytes"] < row["shared_bytes"]
    jobs = client.get("/api/jobs", params={"sweep": sweep["id"]}).json()
    assert sorted(j["id"] for j in jobs) == sorted(sweep["job_ids"])
    assert all(j["sweep_id"] == sweep["id"] for j in jobs)
    assert sweep["id"] in [s["id"] for s in client.get("/api/sweeps").json()]
    assert client.get("/api/sweeps/99999").status_code == 404


@pytest.mark.parametrize(
    ("grid", "words"),
    [
        ({"kep": [0.1]}, "unknown field 'kep'"),
        ({"keep": [0.1, 7.0]}, "keep must be in [1e-06, 1], got 7 (in the job keep=7.0)"),
        (
            {"bottleneck": [1000]},
            "bottleneck must be at most 256 (8 x the hidden size 32 of tiny-bert)",
        ),
        ({"lr": [i / 1000 for i in range(1, 80)]}, "at most 64 jobs"),
    ],
)
def test_bad_sweeps_are_422_and_write_nothing(client, grid, words):
    before = len(client.get("/api/jobs", params={"limit": 500}).json())
    reply = client.post("/api/sweeps", json={"base": BASE, "grid": grid})
    assert reply.status_code == 422 and words in reply.text
    assert len(client.get("/api/jobs", params={"limit": 500}).json()) == before


def _job_uid(client, sweep, petl: str) -> str:
    job_id = next(r["job_id"] for r in sweep["results"] if r["values"]["propetl.petl"] == petl)
    return client.get(f"/api/jobs/{job_id}").json()["prototype"]


def _unzip(reply, target: Path) -> Path:
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(reply.content)) as archive:
        archive.extractall(target)
        [top] = {n.split("/")[0] for n in archive.namelist()}
    return target / top


def test_peft_and_merged_exports_match_the_propetl_logits(client, stack, sweep, tmp_path):
    peft = pytest.importorskip("peft")
    from transformers import AutoModelForSequenceClassification

    from propetl.model import ProPETLModel
    from propetl.tiny import tiny_backbone

    uid = _job_uid(client, sweep, "lora")
    url = f"/api/prototypes/{uid}/masks/rotten_tomatoes/export"
    adapter = _unzip(client.get(url, params={"format": "peft"}), tmp_path / "peft")
    merged = _unzip(client.get(url, params={"format": "merged"}), tmp_path / "merged")
    assert (adapter / "adapter_config.json").is_file()
    ours = ProPETLModel.from_pretrained(stack.registry.get_prototype(uid).artifact_path).eval()
    ids = torch.randint(5, 1000, (3, 12))
    mask = torch.ones_like(ids)
    with torch.no_grad():
        expected = ours(input_ids=ids, attention_mask=mask, task="rotten_tomatoes").logits
    tiny_backbone("bert", vocab_size=30522).save_pretrained(tmp_path / "base")
    base = AutoModelForSequenceClassification.from_pretrained(tmp_path / "base", num_labels=2)
    adapted = peft.PeftModel.from_pretrained(base, adapter).eval()
    plain = AutoModelForSequenceClassification.from_pretrained(merged).eval()
    with torch.no_grad():
        torch.testing.assert_close(
            adapted(input_ids=ids, attention_mask=mask).logits, expected, atol=1e-5, rtol=1e-5
        )
        torch.testing.assert_close(
            plain(input_ids=ids, attention_mask=mask).logits, expected, atol=1e-5, rtol=1e-5
        )
    assert sorted(plain.config.label2id) == sorted(ours.task_specs["rotten_tomatoes"].label_names)


def test_refused_and_unknown_exports(client, sweep):
    uid = _job_uid(client, sweep, "adapter")
    url = f"/api/prototypes/{uid}/masks/rotten_tomatoes/export"
    for fmt in ("peft", "merged"):
        reply = client.get(url, params={"format": fmt})
        assert reply.status_code == 422
        assert "only LoRA tasks" in reply.json()["detail"]
    names = zipfile.ZipFile(io.BytesIO(client.get(url).content)).namelist()
    assert any(n.endswith("tasks/rotten_tomatoes/masks.safetensors") for n in names)
    assert client.get(url, params={"format": "onnx"}).status_code == 422
    assert client.get(f"/api/prototypes/{uid}/masks/sst2/export").status_code == 404


def test_a_sweep_and_its_jobs_belong_to_the_caller(auth_client):
    from tests.dashboard_stack import token_for

    alice = token_for(auth_client, "alice", "wonder")
    bob = token_for(auth_client, "bob", "builder")
    body = {"owner": "mallory", "base": {**BASE, "owner": "mallory"}, "grid": {"lr": [0.001, 0.01]}}
    assert auth_client.post("/api/sweeps", json=body).status_code == 401
    reply = auth_client.post("/api/sweeps", json=body, headers=alice)
    assert reply.status_code == 201, reply.text
    created = reply.json()
    assert created["owner"] == "alice"
    assert created["base_spec"]["owner"] == "alice"  # the stored base spec names her too
    assert (
        auth_client.get(f"/api/sweeps/{created['id']}", headers=alice).json()["base_spec"]["owner"]
        == "alice"
    )
    for job_id in created["job_ids"]:
        assert auth_client.get(f"/api/jobs/{job_id}", headers=alice).json()["owner"] == "alice"
        assert auth_client.post(f"/api/jobs/{job_id}/cancel", headers=bob).status_code == 404
        assert auth_client.post(f"/api/jobs/{job_id}/cancel", headers=alice).status_code == 200

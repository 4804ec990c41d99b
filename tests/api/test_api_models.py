"""REST API: prototypes, masks (download, delete) and predict."""

from __future__ import annotations

import io
import zipfile

import pytest


def test_prototypes(client, stack):
    [proto] = [p for p in client.get("/api/prototypes").json() if p["uid"] == stack.uid]
    assert sorted(proto["tasks"]) == ["bbc_news", "rotten_tomatoes"]
    assert proto["petl"] == "adapter" and 0 < proto["ratio_to_baseline"] < 1
    detail = client.get(f"/api/prototypes/{stack.uid}").json()
    assert detail["storage"]["mask_bits_per_task"] > 0
    assert client.get("/api/prototypes/nope").status_code == 404


def test_masks_and_downloads(client, stack):
    masks = {m["task"]: m for m in client.get(f"/api/prototypes/{stack.uid}/masks").json()}
    assert masks["bbc_news"]["disk_bytes"] > masks["bbc_news"]["mask_bytes"] > 0
    assert "main" in masks["bbc_news"]["dev_metrics"]
    reply = client.get(f"/api/prototypes/{stack.uid}/masks/bbc_news/download")
    assert reply.status_code == 200
    names = zipfile.ZipFile(io.BytesIO(reply.content)).namelist()
    assert any(n.endswith("tasks/bbc_news/masks.safetensors") for n in names)
    assert any(n.endswith("propetl_config.json") for n in names)
    assert not any("rotten_tomatoes" in n for n in names)
    bundle = client.get(f"/api/prototypes/{stack.uid}/download")
    names = zipfile.ZipFile(io.BytesIO(bundle.content)).namelist()
    assert any(n.endswith("prototype.safetensors") for n in names)
    assert any("rotten_tomatoes" in n for n in names)
    assert client.get(f"/api/prototypes/{stack.uid}/masks/sst2/download").status_code == 404
    assert client.get("/api/prototypes/nope/masks").status_code == 404


def test_predict_task_per_request(client, stack):
    one = client.post("/api/predict", json={"prototype": stack.uid, "task": "bbc_news",
                                            "text": "the match ended in a draw"}).json()
    assert one["mode"] == "single" and len(one["results"]) == 1
    assert set(one["results"][0]["scores"]) == {"business", "entertainment", "politics",
                                                "sports", "tech"}
    assert one["timing"]["inference_ms"] > 0
    every = client.post("/api/predict", json={"prototype": stack.uid, "task": "all",
                                              "text": "great film"}).json()
    assert every["mode"] == "mixed"
    assert sorted(r["task"] for r in every["results"]) == ["bbc_news", "rotten_tomatoes"]
    mixed = client.post("/api/predict", json={"prototype": stack.uid, "items": [
        {"task": "rotten_tomatoes", "text": "dull"}, {"task": "bbc_news", "text": "stocks"}]})
    assert [r["task"] for r in mixed.json()["results"]] == ["rotten_tomatoes", "bbc_news"]


@pytest.mark.parametrize(("body", "code"), [
    ({"task": "sst2", "text": "x"}, 422),
    ({"task": "bbc_news", "text": "  "}, 422),
    ({"text": "x"}, 422),
    ({"items": [{"task": "nope", "text": "x"}]}, 422),
])
def test_predict_refusals(client, stack, body, code):
    reply = client.post("/api/predict", json={"prototype": stack.uid, **body})
    assert reply.status_code == code, reply.text
    assert reply.json()["detail"]


def test_predict_unknown_prototype_is_404(client):
    reply = client.post("/api/predict", json={"prototype": "nope", "task": "x", "text": "y"})
    assert reply.status_code == 404

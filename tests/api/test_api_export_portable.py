"""Exports load on another machine (issue 15, defect 8): the PEFT adapter names the
backbone by its hub name, and no file of an export names a path of this server."""

from __future__ import annotations

import io
import json
import zipfile

import pytest

LORA = {
    "name": "lora export",
    "config": {
        "backbone": "tiny-bert",
        "tasks": ["rotten_tomatoes"],
        "max_examples": 16,
        "max_steps": 2,
        "batch_size": 8,
        "eval_every": 2,
        "propetl": {"petl": "lora"},
    },
}


@pytest.fixture(scope="module")
def lora_uid(client, stack):
    from worker.runner import execute

    reply = client.post("/api/jobs", json=LORA)
    assert reply.status_code == 201, reply.text
    job_id = reply.json()["id"]
    assert execute(job_id, registry=stack.registry) == "succeeded"
    return client.get(f"/api/jobs/{job_id}").json()["prototype"]


def _files(reply) -> dict[str, bytes]:
    assert reply.status_code == 200, reply.text
    with zipfile.ZipFile(io.BytesIO(reply.content)) as archive:
        return {n: archive.read(n) for n in archive.namelist() if not n.endswith("/")}


@pytest.mark.parametrize("fmt", ["peft", "merged"])
def test_exports_name_no_server_path(client, stack, lora_uid, fmt):
    files = _files(
        client.get(
            f"/api/prototypes/{lora_uid}/masks/rotten_tomatoes/export", params={"format": fmt}
        )
    )
    server_paths = (str(stack.data_dir), "site-packages", "/tmp/", ".export-")
    for name, data in files.items():
        if name.endswith((".json", ".md", ".txt")):
            text = data.decode()
            assert not any(p in text for p in server_paths), f"{name} names a server path"
    readme = next(v.decode() for k, v in files.items() if k.endswith("README.md"))
    top = next(iter(files)).split("/")[0]
    assert f"{top!r})" in readme  # loads from the folder beside the README, by its name
    if fmt == "peft":
        config = json.loads(next(v for k, v in files.items() if k.endswith("adapter_config.json")))
        assert config["base_model_name_or_path"] == "tiny-bert"


def test_bundled_backbones_are_named_by_their_hub_names():
    from propetl.backbones import portable_name

    assert portable_name("minilm-l6") == "sentence-transformers/all-MiniLM-L6-v2"
    assert portable_name("smollm2-135m") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert portable_name("/srv/models/my-bert") == "my-bert"
    assert portable_name("roberta-base") == "roberta-base"

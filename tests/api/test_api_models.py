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
    assert any(n.endswith("prototype.safetensors") for n in names)  # a complete model
    assert not any("rotten_tomatoes" in n for n in names)
    bundle = client.get(f"/api/prototypes/{stack.uid}/download")
    names = zipfile.ZipFile(io.BytesIO(bundle.content)).namelist()
    assert any(n.endswith("prototype.safetensors") for n in names)
    assert any("rotten_tomatoes" in n for n in names)
    assert client.get(f"/api/prototypes/{stack.uid}/masks/sst2/download").status_code == 404
    assert client.get("/api/prototypes/nope/masks").status_code == 404


def test_predict_task_per_request(client, stack):
    one = client.post(
        "/api/predict",
        json={"prototype": stack.uid, "task": "bbc_news", "text": "the match ended in a draw"},
    ).json()
    assert one["mode"] == "single" and len(one["results"]) == 1
    assert set(one["results"][0]["scores"]) == {
        "business",
        "entertainment",
        "politics",
        "sports",
        "tech",
    }
    assert one["timing"]["inference_ms"] > 0
    every = client.post(
        "/api/predict", json={"prototype": stack.uid, "task": "all", "text": "great film"}
    ).json()
    assert every["mode"] == "mixed"
    assert sorted(r["task"] for r in every["results"]) == ["bbc_news", "rotten_tomatoes"]
    mixed = client.post(
        "/api/predict",
        json={
            "prototype": stack.uid,
            "items": [
                {"task": "rotten_tomatoes", "text": "dull"},
                {"task": "bbc_news", "text": "stocks"},
            ],
        },
    )
    assert [r["task"] for r in mixed.json()["results"]] == ["rotten_tomatoes", "bbc_news"]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"task": "sst2", "text": "x"}, 422),
        ({"task": "bbc_news", "text": "  "}, 422),
        ({"text": "x"}, 422),
        ({"items": [{"task": "nope", "text": "x"}]}, 422),
    ],
)
def test_predict_refusals(client, stack, body, code):
    reply = client.post("/api/predict", json={"prototype": stack.uid, **body})
    assert reply.status_code == code, reply.text
    assert reply.json()["detail"]


def test_predict_unknown_prototype_is_404(client):
    reply = client.post("/api/predict", json={"prototype": "nope", "task": "x", "text": "y"})
    assert reply.status_code == 404


@pytest.mark.parametrize("route", ["download", "masks/bbc_news/download", "masks/bbc_news/export"])
def test_concurrent_downloads_all_get_the_same_whole_zip(client, stack, route):
    """12 requests at once each rebuild the same file in exports/: every one is answered
    whole (none lost a temporary file to another, none sees a server path)."""
    from concurrent.futures import ThreadPoolExecutor

    url = f"/api/prototypes/{stack.uid}/{route}"
    with ThreadPoolExecutor(12) as pool:
        replies = list(pool.map(lambda _: client.get(url), range(12)))
    assert [r.status_code for r in replies] == [200] * 12, [r.text[:200] for r in replies]
    assert len({r.content for r in replies}) == 1
    assert zipfile.ZipFile(io.BytesIO(replies[0].content)).testzip() is None
    assert not list((stack.data_dir / "exports").glob("*.tmp"))


def test_a_missing_file_is_404_without_its_server_path(client, stack, monkeypatch):
    from app import bundles

    def gone(*args):
        open(stack.data_dir / "exports" / "gone.zip")  # noqa: SIM115 - raises

    monkeypatch.setattr(bundles, "bundle_zip", gone)
    reply = client.get(f"/api/prototypes/{stack.uid}/download")
    assert reply.status_code == 404 and str(stack.data_dir) not in reply.text


def _label(client, uid: str, name: str, data: bytes, **form):
    return client.post(f"/api/prototypes/{uid}/label", files={"file": (name, data)}, data=form)


def _stored_labels() -> set:
    from app.labels import labels_dir

    return set(labels_dir().glob("*/*")) if labels_dir().exists() else set()


@pytest.mark.parametrize(
    ("name", "data", "form", "words"),
    [
        (
            "rows.csv",
            b"text\na fine film\n",
            {"text_column": "\x01", "task": "bbc_news"},
            "text_column",
        ),
        (
            "rows.jsonl",
            b'{"text":"hi"}\nnot json\n{"nottext":1}\n',
            {"task": "bbc_news"},
            "line 2 is not JSON",
        ),
        ("rows.jsonl", b'{"text":"hi"}\n[1, 2]\n', {"task": "bbc_news"}, "line 2 is not a JSON"),
    ],
)
def test_a_label_file_or_option_that_cannot_work_is_422_and_nothing_is_kept(
    client, stack, name, data, form, words
):
    before = _stored_labels()
    reply = _label(client, stack.uid, name, data, **form)
    assert reply.status_code == 422 and words in reply.json()["detail"], reply.text
    assert _stored_labels() == before


def test_labelling_with_a_prototype_without_tasks_is_422(client, stack):
    from tests.dashboard_stack import TINY
    from worker.runner import execute

    registry = stack.registry
    job_id = registry.submit_job({"config": {**TINY, "tasks": ["bbc_news"], "max_steps": 2}})
    assert execute(job_id, registry=registry) == "succeeded"
    uid = registry.prototype_for_job(job_id).uid
    assert client.delete(f"/api/prototypes/{uid}/masks/bbc_news").status_code == 204
    before = _stored_labels()
    reply = _label(client, uid, "rows.csv", b"text\na fine film\n")
    assert reply.status_code == 422 and "no tasks" in reply.json()["detail"], reply.text
    assert _stored_labels() == before


@pytest.mark.parametrize("route", ["label", "uploads"])
def test_a_file_above_the_upload_limit_is_413_and_nothing_is_kept(
    client, stack, monkeypatch, route
):
    from app import uploads

    monkeypatch.setattr(uploads, "MAX_UPLOAD_BYTES", 1000)
    data = ("text,label\n" + "".join(f"sentence {i},{'ab'[i % 2]}\n" for i in range(99))).encode()
    folder = uploads.folder_for("local")

    def kept() -> set:
        return _stored_labels() | (set(folder.iterdir()) if folder.exists() else set())

    before = kept()
    if route == "label":
        reply = _label(client, stack.uid, "rows.csv", data, task="bbc_news")
    else:
        reply = client.post("/api/uploads", files={"file": ("big.csv", data, "text/csv")})
    assert reply.status_code == 413 and "1,000 bytes" in reply.json()["detail"], reply.text
    assert kept() == before


@pytest.mark.parametrize(
    "route",
    ["masks/bbc_news/download", "masks/bbc_news/export", "masks/bbc_news/export?format=propetl"],
)
def test_a_task_export_loads_from_its_own_folder_and_answers_as_the_server(
    client, stack, route, tmp_path
):
    import json

    from propetl.backbones import load_tokenizer
    from propetl.inference import Predictor
    from propetl.model import ProPETLModel

    reply = client.get(f"/api/prototypes/{stack.uid}/{route}")
    assert reply.status_code == 200, reply.text
    zipfile.ZipFile(io.BytesIO(reply.content)).extractall(tmp_path)
    [folder] = list(tmp_path.iterdir())
    assert json.loads((folder / "propetl_config.json").read_text())["tasks"] == ["bbc_news"]
    model = ProPETLModel.from_pretrained(folder)
    assert model.task_names == ["bbc_news"]
    text = "shares fell sharply after the results"
    here = Predictor(model, load_tokenizer(model.backbone_name)).predict(
        "bbc_news", [(text, None)]
    )[0]
    served = client.post(
        "/api/predict", json={"prototype": stack.uid, "task": "bbc_news", "text": text}
    ).json()["results"][0]
    assert here["label"] == served["label"]
    for label, prob in served["scores"].items():
        assert here["scores"][label] == pytest.approx(prob, abs=1e-4)


def test_a_label_job_records_every_task_its_rows_name(client, stack):
    rows = b"text,task\nshares fell,bbc_news\na fine film,rotten_tomatoes\nmore,bbc_news\n"
    reply = _label(client, stack.uid, "rows.csv", rows)
    assert reply.status_code in (200, 201, 202), reply.text
    job = client.get(f"/api/jobs/{reply.json()['id']}").json()
    assert job["tasks"] == ["bbc_news", "rotten_tomatoes"], job

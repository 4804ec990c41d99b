"""The tabs' functions, without a browser, over one trained tiny prototype."""

from __future__ import annotations

import json
from dataclasses import fields, replace

import pytest

from propetl.config import DEFAULT_MASK_LR, PAPER_MASK_LR, PropetlConfig, TrainConfig


@pytest.fixture(scope="module")
def ctx(stack):
    from app.auth import get_auth
    from app.ui.common import Ctx

    return Ctx(get_auth())


class _Req:
    def __init__(self, username):
        self.username = username


def test_form_is_generated_from_the_dataclasses():
    from app.ui import forms, launch

    keys = {s.key for s in launch.SPECS}
    expected = {f.name for f in fields(TrainConfig)} - {"backbone", "tasks", "propetl"}
    expected |= {f"propetl.{f.name}" for f in fields(PropetlConfig)} - {"propetl.extra"}
    assert keys == expected
    values = forms.from_config(launch.SPECS, TrainConfig(max_steps=7).to_dict())
    config = forms.to_config(launch.SPECS, values)
    assert config["max_steps"] == 7 and config["propetl"]["petl"] == "adapter"
    blank = forms.to_config(
        launch.SPECS, [s.default if not s.optional else "" for s in launch.SPECS]
    )
    assert "max_steps" not in blank and "keep" not in blank["propetl"]


def test_generation_options_have_their_section_opened_by_generative_choices():
    from app.ui import launch

    section = {s.key: s.section for s in launch.SPECS}
    assert {section[k] for k in ("max_target_length", "num_beams", "label_smoothing")} == {
        "generation"
    }
    assert launch.generation_open("minilm-l6", ["bbc_headlines"])["open"] is True
    assert launch.generation_open("tiny-llama", ["rotten_tomatoes"])["open"] is True
    assert "open" not in launch.generation_open("minilm-l6", ["rotten_tomatoes", "nope"])
    assert "open" not in launch.generation_open("no/such-model", None)
    assert "text → text" in launch.tasks_md(["bbc_headlines"])


def test_submit_names_the_bad_field_then_queues(ctx):
    from app.ui import launch

    values = [s.default for s in launch.SPECS]
    lr = [s.key for s in launch.SPECS].index("lr")
    steps = [s.key for s in launch.SPECS].index("max_steps")
    values[steps] = "many"
    message, _, _ = launch.submit(ctx, None, "x", "", "tiny-bert", [], values)
    assert "config.max_steps" in message and "valid integer" in message
    values[lr], values[steps] = -1.0, "2"
    message, _, _ = launch.submit(ctx, None, "x", "", "tiny-bert", ["rotten_tomatoes"], values)
    assert "config.lr: lr must be in [1e-08, 10], got -1" in message
    values[lr], values[steps] = 1e-3, "2"
    message, tabs, job = launch.submit(
        ctx, None, "ui job", "", "tiny-bert", ["rotten_tomatoes"], values
    )
    assert "queued" in message and tabs.selected == "jobs" and job["value"] > 0
    assert "ProPETL needs" in launch.storage("tiny-bert", ["a", "b"], *values)


def test_upload_lists_every_problem(ctx, tmp_path):
    from app.ui import launch

    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\nhello,\n,b\n")
    message, _ = launch.upload(str(bad), [])
    assert message.startswith("**✗ bad.csv") and message.count("\n- ") >= 2
    good = tmp_path / "mine.csv"
    good.write_text("text,label\n" + "".join(f"text number {i},{'ab'[i % 2]}\n" for i in range(40)))
    message, update = launch.upload(str(good), ["rotten_tomatoes"])
    assert "ready as task `mine`" in message
    assert update["value"][-1] == "mine.csv"  # the upload's name, never a server path
    rows, where, page = launch.preview("rotten_tomatoes", 2)
    assert len(rows) == launch.PAGE and page == 2 and "page 3 of" in where


def test_presets_round_trip(stack):
    from app.ui import launch, presets

    values = [s.default for s in launch.SPECS]
    message, _ = launch.save_preset("mine", "tiny-bert", ["bbc_news"], *values)
    assert "saved" in message and "mine" in presets.list_presets()
    loaded = launch.apply_preset("mine")
    assert loaded[0] == "tiny-bert" and loaded[1] == ["bbc_news"]
    assert "built in" in launch.save_preset("LoRA, paper defaults", "x", [], *values)[0]
    # the measured recipe is the product's default rate, the paper preset the scripts' rate
    keys = [s.key for s in launch.SPECS]
    recipe = dict(zip(keys, launch.apply_preset("adapter, measured recipe")[2:], strict=True))
    paper = dict(zip(keys, launch.apply_preset("adapter, paper defaults")[2:], strict=True))
    assert recipe["mask_lr"] == DEFAULT_MASK_LR["adapter"] != paper["mask_lr"]
    assert paper["mask_lr"] == PAPER_MASK_LR["adapter"]
    assert (recipe["epochs"], recipe["warmup_ratio"]) == (1.0, 0.1)  # the recipe study's
    lora = dict(zip(keys, launch.apply_preset("LoRA, measured recipe")[2:], strict=True))
    lora_paper = dict(zip(keys, launch.apply_preset("LoRA, paper defaults")[2:], strict=True))
    assert lora["propetl.keep"] == 0.5 and lora_paper["propetl.keep"] == 0.1


def test_jobs_table_page_and_compare(ctx, stack):
    import gradio as gr

    from app.ui import jobs

    frame = jobs.jobs_frame()
    assert stack.job_id in list(frame["ID"])
    page = jobs.job_page(stack.job_id, "")
    assert page[0]["visible"] and "succeeded" in page[1]
    assert page[2] is not None and "train  loss" in page[5]
    assert "wall time" in page[4] and "Confusion matrix" in page[4]  # the run page
    again = jobs.job_page(stack.job_id, page[-1])
    assert again[-1] == page[-1]  # nothing changed: a finished job's page is not sent again
    assert all(part == gr.skip() for part in again[:-1]), again
    table, *_, ids, digest = jobs.refresh_table([], 0, "", "")
    assert stack.job_id in ids and list(table["ID"]) == ids
    unchanged = jobs.refresh_table(ids, 0, "", digest)
    assert unchanged[0] == gr.skip() and unchanged[-1] == digest  # not redrawn
    other = stack.registry.submit_job(
        {"config": {"backbone": "tiny-bert", "tasks": ["bbc_news"], "lr": 0.01}}
    )
    _loss, _dev, diff = jobs.compare([stack.job_id, other], True)
    assert "lr" in list(diff["option"]) and "propetl.petl" not in list(diff["option"])
    assert "cancelled" in jobs.act(ctx, None, other, "cancel")
    assert jobs.clone_spec(stack.job_id)["config"]["backbone"] == "tiny-bert"


def test_curves_per_task_with_majority_lines(stack):
    from app import runs
    from app.ui import jobs

    series = stack.registry.metric_series(stack.job_id)
    view = runs.run_view(stack.registry, stack.registry.get_job(stack.job_id))
    dev = jobs.dev_figure(series, baselines=jobs.dev_baselines(view)).axes[0]
    labels = [line.get_label() for line in dev.get_lines()]
    assert dev.get_title(loc="left") == "Dev metric per task"
    assert {"rotten_tomatoes majority class", "bbc_news majority class"} <= set(labels)
    loss = jobs.loss_figure(series).axes[0]
    assert {line.get_label() for line in loss.get_lines()} <= {"rotten_tomatoes", "bbc_news"}


def test_owner_rule_in_the_ui(ctx, stack):
    from app.ui import jobs, models

    strict = type(ctx)(replace(ctx.auth, enabled=True, users={"bob": "x"}))
    message = jobs.act(strict, _Req("bob"), stack.job_id, "retry")
    assert message.startswith("✗") and "local" in message
    message = models.delete(strict, _Req("bob"), stack.uid, "bbc_news", True)
    assert message.startswith("✗") and "local" in message
    assert "Tick" in models.delete(ctx, None, stack.uid, "bbc_news", False)


def test_masks_tab(stack):
    from app.ui import masks

    note, charts, *figures = masks.render(
        stack.uid, "adapter.down", 1, False, "rotten_tomatoes", "bbc_news"
    )
    assert "adapter.down" in note and len(figures) == masks.N_PLOTS
    assert all(f is not None for f in figures) and charts["visible"] is True
    note, charts, *_ = masks.render(None, None, 0, False, None, None)
    assert "No prototypes yet" in note and charts["visible"] is False  # no blank charts


def test_models_tab(stack):
    from app.ui import models

    summary, tasks, _picker, fmt = models.detail(stack.uid)
    assert fmt["value"] == "propetl"  # an adapter task cannot be a PEFT LoRA adapter
    assert stack.uid in summary and sorted(tasks["Task"]) == ["bbc_news", "rotten_tomatoes"]
    path, message = models.download(stack.uid, "bbc_news", False)
    assert path.endswith(".zip") and "ready" in message


def test_playground_tab(stack):
    from app.ui import playground

    out, timing = playground.predict(stack.uid, "bbc_news", "shares fell", "")
    assert "bbc_news" in out and "Mask swap" in timing
    out, timing = playground.predict(stack.uid, "all tasks", "shares fell", "")
    assert out.count("pp-result'") == 2 and "mixed batch" in timing
    out, _ = playground.predict(stack.uid, "bbc_news", "", "")
    assert "type a text" in out


def test_server_mounts_ui_with_stable_api_names(stack):
    from fastapi.testclient import TestClient

    from app.auth import get_auth
    from app.server import create_app

    with TestClient(create_app(get_auth())) as client:
        assert client.get("/").status_code == 200
        config = client.get("/config").json()
        public = {
            d.get("api_name")
            for d in config["dependencies"]
            if d.get("api_visibility", "public") == "public"
        }
        assert public == {"launch", "list_jobs", "predict"}  # the page's own events are private
        assert client.get("/api/openapi.json").status_code == 200


def _client_call(client, name: str, data: list) -> tuple[str, str]:
    """A `gradio_client` call over the app's HTTP API: (event, its data)."""
    reply = client.post(f"/gradio_api/call/{name}", json={"data": data})
    assert reply.status_code == 200, reply.text
    answer = client.get(f"/gradio_api/call/{name}/{reply.json()['event_id']}").text
    event, _, payload = answer.strip().partition("\n")
    return event.removeprefix("event: "), payload.removeprefix("data: ")


def test_client_endpoints_answer_bad_arguments_by_name(stack):
    from fastapi.testclient import TestClient

    from app.auth import get_auth
    from app.server import create_app

    with TestClient(create_app(get_auth())) as client:
        for data, words in [
            (["", 99999999999999999999, 5], "sweep must be a sweep's id"),
            (["bogus", 0, 5], "status must be one of queued, running"),
        ]:
            event, payload = _client_call(client, "list_jobs", data)
            assert event == "error" and words in payload, payload
        event, payload = _client_call(
            client, "launch", [["rotten_tomatoes"], "tiny-bert", "", "notadict", ""]
        )
        assert event == "error" and "config must be a mapping" in payload, payload
        event, payload = _client_call(
            client,
            "launch",
            [
                ["rotten_tomatoes"],
                "nope-backbone",
                "",
                {"max_steps": -1, "propetl": {"keep": 5, "petl": "zzz"}},
                "",
            ],
        )
        assert event == "error" and payload.count("max_steps must") == 1, payload
        assert payload.count("keep must") == 1 and ">= 1" not in payload
        for task in ("all", "all tasks"):  # as the REST API reads them
            event, payload = _client_call(client, "predict", [stack.uid, task, "a fine film", ""])
            assert event == "complete", payload
            assert {r["task"] for r in json.loads(payload)[0]["results"]} == {
                "rotten_tomatoes",
                "bbc_news",
            }

"""The training engine on a tiny random backbone and small slices of the bundled tasks."""

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from propetl.config import ConfigError, PropetlConfig, TrainConfig
from propetl.model import ProPETLModel
from propetl.training import pick_device, train

pytestmark = pytest.mark.timeout(300)


def tiny_job(**overrides) -> TrainConfig:
    fields = {
        "backbone": "tiny-bert",
        "tasks": ["rotten_tomatoes"],
        "max_examples": 64,
        "batch_size": 8,
        "max_steps": 12,
        "eval_every": 4,
        "lr": 3e-3,
        "max_length": 32,
        "propetl": PropetlConfig(petl="adapter", bottleneck=8),
    }
    return TrainConfig(**{**fields, **overrides})


def read_events(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_a_short_run_reports_progress_and_writes_a_loadable_model(tmp_path):
    events = []
    result = train(tiny_job(), tmp_path, on_progress=events.append)
    assert result.status == "succeeded" and result.steps == 12
    phases = [e.phase for e in events]
    assert phases[-2:] == ["test", "done"] and "eval" in phases and "train" in phases
    train_events = [e for e in events if e.phase == "train"]
    assert all(
        e.loss is not None and set(e.learning_rates) == {"lr", "mask_lr"} for e in train_events
    )
    assert train_events[-1].eta_seconds is not None and train_events[-1].tokens_per_second > 0
    assert set(result.test_metrics["rotten_tomatoes"]) >= {"accuracy", "main"}
    assert result.best_step in (4, 8, 12)
    model = ProPETLModel.from_pretrained(result.model_dir)
    assert model.task_names == ["rotten_tomatoes"]
    assert result.tasks["rotten_tomatoes"]["mask_bytes"] > 0
    assert result.storage["mask_bits_per_task"] == 2 * 2 * 8 * 32
    checkpoint = sorted((tmp_path / "checkpoints").iterdir())[-1]
    assert (checkpoint / "trainable.safetensors").stat().st_size < 200_000, "backbone copied"


def test_mask_scores_use_mask_lr_and_no_decay_skips_biases(tmp_path):
    from propetl.training import ProPETLTrainer

    captured = {}
    original = ProPETLTrainer.create_optimizer

    def spy(self, model=None):
        optimizer = original(self, model)
        captured.update({g["name"]: (g["lr"], g["weight_decay"]) for g in optimizer.param_groups})
        return optimizer

    ProPETLTrainer.create_optimizer = spy
    try:
        train(tiny_job(max_steps=2, mask_lr=0.05, lr=0.002, weight_decay=0.1), tmp_path)
    finally:
        ProPETLTrainer.create_optimizer = original
    # lr values are after the scheduler's first step; ratios survive it
    assert captured["mask_lr"][0] / captured["lr"][0] == pytest.approx(25)
    assert captured["mask_lr"][1] == 0.1 and captured["lr_no_decay"][1] == 0.0


def test_cancel_saves_a_checkpoint_and_resume_matches_an_uninterrupted_run(tmp_path):
    job = tiny_job(save_every=2)
    straight = train(job, tmp_path / "straight")
    calls = {"n": 0}

    def stop_at_six() -> bool:
        calls["n"] += 1
        return calls["n"] >= 6

    cancelled = train(job, tmp_path / "resumed", should_stop=stop_at_six)
    assert cancelled.status == "cancelled" and cancelled.steps == 6
    assert (tmp_path / "resumed" / "checkpoints" / "checkpoint-6").is_dir()
    resumed = train(job, tmp_path / "resumed")
    assert resumed.status == "succeeded" and resumed.steps == straight.steps == 12
    first_after = [e["step"] for e in read_events(tmp_path / "resumed") if e["phase"] == "train"]
    assert first_after[first_after.index(6) + 1] == 7, "resume restarted from the beginning"
    a = load_file(tmp_path / "straight" / "checkpoints" / "checkpoint-12" / "trainable.safetensors")
    b = load_file(tmp_path / "resumed" / "checkpoints" / "checkpoint-12" / "trainable.safetensors")
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-5, rtol=1e-4, msg=key)


def test_a_killed_cli_run_resumes_from_its_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "propetl.cli",
        "train",
        "--backbone",
        "tiny-bert",
        "--tasks",
        "rotten_tomatoes",
        "--max-examples",
        "64",
        "--batch-size",
        "4",
        "--max-steps",
        "40",
        "--eval-every",
        "5",
        "--max-length",
        "32",
        "--bottleneck",
        "8",
        "--run-dir",
        str(run_dir),
    ]
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while not (run_dir / "checkpoints" / "checkpoint-10" / "trainer_state.json").is_file():
        assert process.poll() is None and time.monotonic() < deadline, "run ended early"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    before_kill = read_events(run_dir)
    killed_at = max(e["step"] for e in before_kill)
    assert killed_at < 40
    finished = subprocess.run(
        [*command, "--json"], env=env, capture_output=True, text=True, timeout=180
    )
    assert finished.returncode == 0, finished.stderr[-2000:]
    result = json.loads(finished.stdout[finished.stdout.index("{") :])
    assert result["steps"] == 40 and result["status"] == "succeeded"
    resumed = [e["step"] for e in read_events(run_dir)[len(before_kill) :] if e["phase"] == "train"]
    assert 10 < resumed[0] <= killed_at + 1, f"resumed at step {resumed[0]}, killed at {killed_at}"


def test_multi_task_job_trains_one_prototype_for_all_tasks(tmp_path):
    result = train(
        tiny_job(
            tasks=["rotten_tomatoes", "bbc_news", "tweet_sentiment"], max_steps=9, eval_every=9
        ),
        tmp_path,
    )
    assert set(result.test_metrics) == {"rotten_tomatoes", "bbc_news", "tweet_sentiment"}
    model = ProPETLModel.from_pretrained(result.model_dir)
    assert [model.task_specs[t].num_labels for t in model.task_names] == [2, 5, 3]
    masks = [result.model_dir / "tasks" / t / "masks.safetensors" for t in model.task_names]
    assert len({m.stat().st_size for m in masks}) == 1


def test_a_half_written_checkpoint_is_skipped_on_resume(tmp_path):
    from propetl.training import last_complete_checkpoint

    train(tiny_job(max_steps=8, save_every=4), tmp_path)
    folder = tmp_path / "checkpoints"
    (folder / "checkpoint-12").mkdir()
    (folder / "checkpoint-12" / "trainable.safetensors").write_bytes(b"partial")
    assert last_complete_checkpoint(folder).endswith("checkpoint-8")


def test_a_rerun_with_another_config_is_refused(tmp_path):
    train(tiny_job(max_steps=2), tmp_path)
    with pytest.raises(ConfigError, match="another config") as caught:
        train(tiny_job(max_steps=3), tmp_path)
    assert "(max_steps: saved 2, given 3)" in str(caught.value)  # names what differs


def test_impossible_device_requests_are_clear():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        pick_device(tiny_job(device="cuda"))
    with pytest.raises(ConfigError, match="needs a CUDA GPU"):
        pick_device(tiny_job(precision="bf16"))


def test_job_config_validation_names_the_field():
    with pytest.raises(ConfigError, match="batch_size"):
        tiny_job(batch_size=0)
    with pytest.raises(ConfigError, match="keep"):
        PropetlConfig(keep=0)
    with pytest.raises(ConfigError, match="unknown config field"):
        TrainConfig.from_dict({"learning_rate": 1})


def test_one_config_error_names_every_problem():
    with pytest.raises(ConfigError) as caught:
        TrainConfig.from_dict(
            {
                "learning_rate": 1,
                "batch_size": 0,
                "lr": -1.0,
                "propetl": {"keep": 2.0, "bottleneck": 0},
            }
        )
    problems = caught.value.problems
    assert len(problems) == 5, problems
    for field in ("learning_rate", "batch_size", "lr", "keep", "bottleneck"):
        assert sum(field in p for p in problems) >= 1, (field, problems)
    assert str(caught.value) == "; ".join(problems)
    # wrong types are named together too (values are compared only once the types are right)
    with pytest.raises(ConfigError) as caught:
        TrainConfig(lr="fast", epochs=[1], seed=1.5)  # type: ignore[arg-type]
    assert [p.split(" ")[0] for p in caught.value.problems] == ["lr", "epochs", "seed"]
    # the problems survive the trip to another process (Celery pickles exceptions)
    again = pickle.loads(pickle.dumps(caught.value))
    assert type(again) is ConfigError and again.problems == caught.value.problems


def test_early_stopping_ends_a_run_that_no_longer_improves(tmp_path):
    result = train(
        tiny_job(lr=1e-12, mask_lr=1e-12, eval_every=1, max_steps=12, early_stopping_patience=2),
        tmp_path,
    )
    assert result.status == "succeeded" and result.steps == 3
    assert result.best_step == 1


def test_fresh_clears_every_artifact_of_the_previous_run(tmp_path):
    """--fresh starts over: no predictions, event files or onto.json of the old run remain,
    and files the engine did not write stay."""
    from propetl.training import clear_run

    train(tiny_job(max_steps=2, tasks=["bbc_news"]), tmp_path)
    (tmp_path / "onto.json").write_text("{}")  # as a former --onto run leaves it
    (tmp_path / "notes.txt").write_text("mine")
    old_events = set((tmp_path / "tensorboard").iterdir())
    assert (tmp_path / "predictions" / "test" / "bbc_news.jsonl").is_file() and old_events
    train(tiny_job(max_steps=2), tmp_path, resume=False)
    assert not (tmp_path / "predictions" / "test" / "bbc_news.jsonl").exists()
    assert (tmp_path / "predictions" / "test" / "rotten_tomatoes.jsonl").is_file()
    assert not old_events & set((tmp_path / "tensorboard").iterdir())
    assert not (tmp_path / "onto.json").exists()
    assert (tmp_path / "notes.txt").read_text() == "mine"
    clear_run(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "notes.txt"]

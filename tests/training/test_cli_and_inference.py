"""The method's command line and the multi-task predictor, on a tiny trained model."""

import json

import pytest
import yaml
from click.testing import CliRunner

from propetl.backbones import load_tokenizer
from propetl.cli import cli
from propetl.inference import Predictor
from propetl.model import ProPETLModel

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    spec = {
        "backbone": "tiny-bert",
        "tasks": ["rotten_tomatoes", "bbc_news"],
        "max_examples": 32,
        "batch_size": 8,
        "max_steps": 4,
        "eval_every": 4,
        "max_length": 32,
        "propetl": {"petl": "lora", "lora_r": 4},
    }
    config = folder / "job.yaml"
    config.write_text(yaml.safe_dump(spec) + "lr: 2e-3\n")  # as people write it (YAML 1.2)
    result = CliRunner().invoke(
        cli, ["train", str(config), "--run-dir", str(folder / "run"), "--json"]
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.output[result.output.index("{") :])


def run_cli(*args):
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_train_from_yaml_writes_the_run_folder(trained):
    from pathlib import Path

    assert trained["status"] == "succeeded" and trained["steps"] == 4
    saved = json.loads((Path(trained["model_dir"]).parent / "config.json").read_text())
    assert saved["lr"] == pytest.approx(2e-3)  # `2e-3` read as a number, not refused as text
    assert set(trained["test_metrics"]) == {"rotten_tomatoes", "bbc_news"}


def test_predict_eval_and_export(trained, tmp_path):
    model_dir = trained["model_dir"]
    answer = json.loads(
        run_cli(
            "predict", "--model", model_dir, "--task", "bbc_news", "shares fell sharply", "--json"
        )
    )
    assert answer["label"] in answer["scores"] and len(answer["scores"]) == 5
    assert sum(answer["scores"].values()) == pytest.approx(1.0)
    metrics = json.loads(
        run_cli(
            "eval",
            "--model",
            model_dir,
            "--task",
            "rotten_tomatoes",
            "--max-examples",
            "32",
            "--json",
        )
    )
    assert 0 <= metrics["accuracy"] <= 1
    run_cli("export", "--model", model_dir, "--task", "bbc_news", "--out", str(tmp_path / "x"))
    exported = ProPETLModel.from_pretrained(tmp_path / "x")
    assert exported.task_names == ["bbc_news"]


def test_cli_errors_are_one_clear_line(trained, tmp_path):
    result = CliRunner().invoke(
        cli, ["predict", "--model", trained["model_dir"], "--task", "nope", "some text"]
    )
    assert result.exit_code != 0 and "unknown task 'nope'" in result.output
    assert "Traceback" not in result.output
    result = CliRunner().invoke(
        cli,
        ["train", "--backbone", "tiny-bert", "--tasks", "nope", "--run-dir", str(tmp_path / "r")],
    )
    assert result.exit_code != 0 and "nope" in result.output and "rotten_tomatoes" in result.output
    result = CliRunner().invoke(
        cli,
        [
            "train",
            "--backbone",
            "tiny-bert",
            "--batch-size",
            "0",
            "--run-dir",
            str(tmp_path / "r2"),
        ],
    )
    assert result.exit_code != 0 and "batch_size" in result.output
    result = CliRunner().invoke(
        cli,
        [
            "train",
            "--backbone",
            "tiny-bert",
            "--batch-size",
            "0",
            "--keep",
            "2",
            "--lr",
            "-1",
            "--run-dir",
            str(tmp_path / "r4"),
        ],
    )
    lines = result.output.strip().splitlines()
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert [line.split()[1] for line in lines if line.strip().startswith("- ")] == [
        "propetl.keep",
        "lr",
        "batch_size",
    ], result.output
    assert not (tmp_path / "r4").exists()
    result = CliRunner().invoke(
        cli, ["train", "--backbone", "no-such/model-xyz", "--run-dir", str(tmp_path / "r3")]
    )
    assert result.exit_code != 0 and "cannot load backbone" in result.output


def test_tasks_lists_the_catalog():
    listing = json.loads(run_cli("tasks", "--json"))
    names = {t["name"] for t in listing}
    assert {"rotten_tomatoes", "bbc_news", "tweet_sentiment", "sst2", "stsb"} <= names


def test_predictor_serves_every_task_and_mixed_requests(trained):
    model = ProPETLModel.from_pretrained(trained["model_dir"])
    predictor = Predictor(model, load_tokenizer("tiny-bert"))
    text = ("the film was a delight", None)
    alone = {t: predictor.predict(t, [text])[0] for t in predictor.tasks}
    mixed = predictor.predict_all_tasks(text)
    for answer in mixed:
        expected = alone[answer["task"]]
        assert answer["label"] == expected["label"]
        for label, prob in answer["scores"].items():
            assert prob == pytest.approx(expected["scores"][label], abs=1e-5)
    assert predictor.last_timing.inference_ms > 0
    with pytest.raises(KeyError, match="unknown task"):
        predictor.predict_mixed([("nope", text)])
    with pytest.raises(ValueError, match="text pair for every example"):
        predictor.predict("bbc_news", [("a", "b"), ("c", None)])


@pytest.mark.parametrize(
    "args",
    [
        ["--backbone", "tiny-bert", "--tasks", "nosuchtask"],
        ["--backbone", "tiny-nope", "--tasks", "rotten_tomatoes"],
        ["--backbone", "tiny-bert", "--tasks", "rotten_tomatoes", "--max-length", "4000"],
    ],
)
def test_a_refused_run_writes_nothing(args, tmp_path):
    """Refusals come before the run folder is made, so the corrected command just runs."""
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(
        cli,
        [
            "train",
            *args,
            "--max-examples",
            "16",
            "--batch-size",
            "8",
            "--max-steps",
            "1",
            "--run-dir",
            str(run_dir),
        ],
    )
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert not run_dir.exists(), sorted(p.name for p in run_dir.iterdir())


def test_a_refused_onto_run_writes_nothing(trained, tmp_path):
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(
        cli,
        [
            "train",
            "--onto",
            trained["model_dir"],
            "--tasks",
            "nosuch",
            "--max-steps",
            "1",
            "--run-dir",
            str(run_dir),
        ],
    )
    assert result.exit_code != 0 and "unknown task 'nosuch'" in result.output
    assert not run_dir.exists()


def test_every_unknown_name_is_reported_at_once_without_class_names(tmp_path):
    result = CliRunner().invoke(
        cli,
        [
            "train",
            "--backbone",
            "tiny-nope",
            "--tasks",
            "nosuch,alsonot",
            "--run-dir",
            str(tmp_path / "r"),
        ],
    )
    assert result.exit_code != 0
    assert "'nosuch'" in result.output and "'alsonot'" in result.output
    assert "tiny-nope" in result.output
    assert "Error:" in result.output
    for name in ("UnknownTaskError", "ConfigError", "BackboneError", "CheckpointError"):
        assert name not in result.output, result.output


def test_storage_accepts_tiny_backbones():
    report = json.loads(run_cli("storage", "--backbone", "tiny-bert", "--keep", "0.5", "--json"))
    assert report["num_layers"] == 2 and report["prototype_params"] > 0


def test_export_refuses_a_folder_of_another_prototype(trained, tmp_path):
    """Task folders of two prototypes in one model folder would not fit each other."""
    from propetl.cli import cli as method_cli
    from propetl.continual import file_hashes

    model_dir = trained["model_dir"]
    other = tmp_path / "other"
    result = CliRunner().invoke(
        method_cli,
        [
            "train",
            "--backbone",
            "tiny-bert",
            "--tasks",
            "rotten_tomatoes",
            "--max-examples",
            "16",
            "--batch-size",
            "8",
            "--max-steps",
            "1",
            "--seed",
            "7",
            "--run-dir",
            str(other),
        ],
    )
    assert result.exit_code == 0, result.output
    before = file_hashes(other / "model")
    result = CliRunner().invoke(
        cli, ["export", "--model", model_dir, "--task", "bbc_news", "--out", str(other / "model")]
    )
    assert result.exit_code != 0 and "another prototype" in result.output
    assert file_hashes(other / "model") == before  # nothing written
    stray = tmp_path / "notes"
    stray.mkdir()
    (stray / "readme.txt").write_text("mine")
    result = CliRunner().invoke(
        cli, ["export", "--model", model_dir, "--task", "bbc_news", "--out", str(stray)]
    )
    assert result.exit_code != 0 and "not empty" in result.output
    assert sorted(p.name for p in stray.iterdir()) == ["readme.txt"]
    # the same prototype: adding a task to an export of it is fine
    out = tmp_path / "one"
    run_cli("export", "--model", model_dir, "--task", "bbc_news", "--out", str(out))
    run_cli("export", "--model", model_dir, "--task", "rotten_tomatoes", "--out", str(out))
    assert ProPETLModel.from_pretrained(out).task_names == ["bbc_news", "rotten_tomatoes"]

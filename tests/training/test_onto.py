"""Adding tasks onto a trained prototype: old files byte-identical, same predictions, CLI."""

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner

from propetl.checkpoint import saved_tasks
from propetl.cli import cli
from propetl.config import DEFAULT_MASK_LR, PAPER_MASK_LR, PropetlConfig
from propetl.continual import (
    OntoError,
    add_task_folders,
    changed_files,
    file_hashes,
    onto_config,
    prototype_hashes,
    read_base,
    rebased_config,
)
from propetl.model import ProPETLModel

pytestmark = pytest.mark.timeout(300)

QUICK = [
    "--max-examples",
    "32",
    "--batch-size",
    "8",
    "--max-steps",
    "3",
    "--eval-every",
    "3",
    "--max-length",
    "32",
]


def run_cli(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A tiny 2-task prototype trained from the command line, kept pristine (tests copy it)."""
    folder = tmp_path_factory.mktemp("base")
    spec = {
        "backbone": "tiny-bert",
        "tasks": ["bbc_news", "tweet_sentiment"],
        "propetl": {"petl": "adapter", "bottleneck": 8, "keep": 0.3, "seed": 7},
    }
    (folder / "job.yaml").write_text(yaml.safe_dump(spec))
    result = run_cli("train", folder / "job.yaml", "--run-dir", folder / "run", *QUICK)
    assert result.exit_code == 0, result.output
    return folder / "run" / "model"


@pytest.fixture(scope="module")
def grown(base, tmp_path_factory):
    """`propetl train --onto` adding rotten_tomatoes, with the base's files hashed before."""
    before = file_hashes(base)
    run = tmp_path_factory.mktemp("grown") / "run"
    result = run_cli(
        "train", "--onto", base, "--tasks", "rotten_tomatoes", "--run-dir", run, "--json", *QUICK
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.output[result.output.index("{") :])
    return before, out


def _texts():
    return ["shares fell sharply after the report", "what a lovely day", "a dull mess"]


def _logits(model_dir, task, tasks=None):
    from propetl.backbones import load_tokenizer

    model = ProPETLModel.from_pretrained(model_dir, tasks=tasks)
    batch = load_tokenizer("tiny-bert")(_texts(), return_tensors="pt", padding=True)
    with torch.no_grad():
        return model(**batch, task=task).logits


def test_onto_writes_only_new_tasks_and_old_files_stay_identical(base, grown):
    before, out = grown
    assert file_hashes(base) == before, "the base model folder was changed"
    model_dir = Path(out["model_dir"])
    assert out["onto"] == str(base)
    assert set(out["test_metrics"]) == {"rotten_tomatoes"}
    assert saved_tasks(model_dir) == ["bbc_news", "tweet_sentiment", "rotten_tomatoes"]
    old = prototype_hashes(base)
    assert changed_files(old, model_dir) == []
    added = json.loads((model_dir / "tasks" / "rotten_tomatoes" / "task.json").read_text())
    assert added["added_at"]
    for task in ("bbc_news", "tweet_sentiment"):
        assert torch.equal(_logits(base, task), _logits(model_dir, task))


def test_new_task_starts_from_the_shared_seeded_scores(base, grown):
    _, out = grown
    model = ProPETLModel.from_pretrained(out["model_dir"])
    assert model.config.mask_init == "shared" and model.config.seed == 7
    bank = model.banks["adapter"]
    starts = [bank.start_masks(t) for t in model.task_names]
    for name in bank.masked:
        assert all(torch.equal(starts[0][name], s[name]) for s in starts[1:])
        # trained for 3 steps at the adapter's mask lr: close to the start, not a fresh draw
        moved = (bank.masks("rotten_tomatoes")[name] != starts[0][name]).float().mean().item()
        assert moved < 0.2


def test_conflicting_method_fields_and_taken_names_are_refused(base, tmp_path):
    result = run_cli(
        "train",
        "--onto",
        base,
        "--tasks",
        "rotten_tomatoes",
        "--keep",
        "0.5",
        "--petl",
        "lora",
        "--run-dir",
        tmp_path / "x",
    )
    assert result.exit_code != 0
    assert "propetl.keep: given 0.5, the prototype has 0.3" in result.output
    assert "propetl.petl: given 'lora', the prototype has 'adapter'" in result.output
    result = run_cli("train", "--onto", base, "--tasks", "bbc_news", "--run-dir", tmp_path / "y")
    assert result.exit_code != 0 and "already on the prototype" in result.output
    assert "--replace" in result.output
    result = run_cli(
        "train",
        "--onto",
        base,
        "--tasks",
        "rotten_tomatoes",
        "--replace",
        "bbc_news",
        "--run-dir",
        tmp_path / "z",
    )
    assert result.exit_code != 0 and "list the task among the tasks" in result.output
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    # the same value as the prototype's is not a conflict
    config = onto_config(
        read_base(base),
        {"tasks": ["rotten_tomatoes"], "propetl": {"keep": 0.3}, "backbone": "tiny-bert"},
    )
    assert config.propetl.bottleneck == 8 and config.propetl.seed == 7
    # an added task trains its mask scores at the default rate of the prototype's kind
    assert config.mask_lr == DEFAULT_MASK_LR["adapter"]
    given = onto_config(read_base(base), {"tasks": ["rotten_tomatoes"], "mask_lr": 1e-3})
    assert given.mask_lr == 1e-3
    # the API's path: mask_lr not given, the submitted config filled in its own kind's default
    submitted = replace(
        given, propetl=PropetlConfig(petl="prefix"), mask_lr=PAPER_MASK_LR["prefix"]
    )
    rebased = rebased_config(read_base(base), submitted, {})
    assert rebased.mask_lr == DEFAULT_MASK_LR["adapter"] != PAPER_MASK_LR["prefix"]
    assert rebased_config(read_base(base), given, {"mask_lr": 1e-3}).mask_lr == 1e-3
    with pytest.raises(OntoError, match="backbone: given 'minilm-l6'"):
        onto_config(read_base(base), {"tasks": ["x"], "backbone": "minilm-l6"})


def test_replace_retrains_one_task_and_keeps_the_others(base, tmp_path):
    result = run_cli(
        "train",
        "--onto",
        base,
        "--tasks",
        "bbc_news",
        "--replace",
        "bbc_news",
        "--run-dir",
        tmp_path / "run",
        "--json",
        *QUICK,
    )
    assert result.exit_code == 0, result.output
    model_dir = tmp_path / "run" / "model"
    assert changed_files(prototype_hashes(base, ["tweet_sentiment"]), model_dir) == []
    assert saved_tasks(model_dir) == ["tweet_sentiment", "bbc_news"]


def test_add_task_folders_places_only_new_folders_and_rolls_back(base, grown, tmp_path):
    _, out = grown
    target = tmp_path / "proto"
    shutil.copytree(base, target)
    before = file_hashes(target)
    placement = add_task_folders(out["model_dir"], ["rotten_tomatoes"], target)
    assert [p.name for p in placement.placed] == ["rotten_tomatoes"]
    placement.commit()
    after = file_hashes(target)
    assert {k: v for k, v in after.items() if k in before} == before
    assert all(k in before or k.startswith("tasks/rotten_tomatoes/") for k in after)
    # a second add of the same name fails and leaves the folder as it was
    with pytest.raises(Exception, match="already in"):
        add_task_folders(out["model_dir"], ["rotten_tomatoes"], target)
    assert file_hashes(target) == after
    assert sorted(p.name for p in (target / "tasks").iterdir()) == [
        "bbc_news",
        "rotten_tomatoes",
        "tweet_sentiment",
    ]
    # replace swaps a folder in; rollback puts the old one back byte for byte
    placement = add_task_folders(base, ["bbc_news"], target, replace=["bbc_news"])
    placement.rollback()
    assert file_hashes(target) == after

"""Generative training end to end: learning, the engine, the CLI, generation and streaming."""

import json
from itertools import pairwise

import pytest
import torch
from click.testing import CliRunner

from propetl import PropetlConfig, ProPETLModel, TaskHeadSpec
from propetl.backbones import is_generative, load_tokenizer
from propetl.cli import cli
from propetl.config import ConfigError, TrainConfig
from propetl.inference import Generator
from propetl.tiny import tiny_backbone
from propetl.training import train

pytestmark = pytest.mark.timeout(300)


@pytest.mark.parametrize("family", ["t5", "llama"])
def test_propetl_learns_to_answer_with_the_backbone_frozen(family):
    """Two tasks over one prototype learn different answers to the same inputs."""
    torch.manual_seed(0)
    model = ProPETLModel(
        tiny_backbone(family),
        PropetlConfig(petl="adapter", bottleneck=16),
        [TaskHeadSpec("up", 1), TaskHeadSpec("down", 1)],
    )
    source = torch.randint(5, 200, (8, 6))
    answers = {"up": torch.arange(10, 14).repeat(8, 1), "down": torch.arange(40, 44).repeat(8, 1)}

    def inputs(task):
        if family == "t5":
            return source, answers[task]
        ids = torch.cat([source, answers[task]], dim=1)
        labels = ids.clone()
        labels[:, :6] = -100
        return ids, labels

    def loss(task):
        ids, labels = inputs(task)
        return model(ids, torch.ones_like(ids), labels=labels, task=task).loss

    def accuracy(task):
        """Teacher-forced share of answer tokens predicted right (argmax)."""
        ids, labels = inputs(task)
        logits = model(ids, torch.ones_like(ids), labels=labels, task=task).logits
        if family == "llama":
            logits, labels = logits[:, :-1], labels[:, 1:]
        kept = labels != -100
        return (logits.argmax(-1)[kept] == labels[kept]).float().mean().item()

    groups = model.parameter_groups()
    optimizer = torch.optim.AdamW(
        [
            {"params": groups["scores"], "lr": 5e-2},
            {"params": groups["weights"] + groups["no_decay"], "lr": 1e-2},
        ]
    )
    before = {t: loss(t).item() for t in answers}
    model.train()
    for step in range(120):
        optimizer.zero_grad()
        total = loss("up" if step % 2 else "down")
        total.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        after = {t: loss(t).item() for t in answers}
        right = {t: accuracy(t) for t in answers}
    assert all(after[t] < before[t] - 0.2 for t in answers), (before, after)
    assert all(value > 0.9 for value in right.values()), right
    assert all(p.grad is None for p in model.backbone.parameters())


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gen")
    config = TrainConfig(
        backbone="tiny-t5",
        tasks=["bbc_headlines", "rotten_tomatoes"],
        max_examples=8,
        batch_size=4,
        max_steps=3,
        eval_every=3,
        max_length=32,
        max_target_length=8,
        eval_batch_size=8,
        num_beams=2,
        label_smoothing=0.1,
        propetl={"petl": "lora", "lora_r": 4, "sharing": "propetl-or"},
    )
    return train(config, folder / "run")


def test_engine_trains_multi_task_text_to_text_and_saves_a_loadable_model(trained):
    assert trained.status == "succeeded" and trained.steps == 3
    assert set(trained.test_metrics["bbc_headlines"]) == {"rouge1", "rouge2", "rougeL", "main"}
    assert {"accuracy", "macro_f1", "main"} <= set(trained.test_metrics["rotten_tomatoes"])
    assert trained.storage["mask_bits_per_task"] > 0
    model = ProPETLModel.from_pretrained(trained.model_dir)
    assert model.family.name == "t5" and model.task_names == ["bbc_headlines", "rotten_tomatoes"]
    generator = Generator(model, load_tokenizer("tiny-t5"), max_new_tokens=5)
    assert generator.prompt("bbc_headlines") == "Headline:"
    assert generator.prompt("rotten_tomatoes") == "Answer (negative, positive):"
    out = generator.generate(
        "bbc_headlines", ["The bank raised its rates.", "A film."], num_beams=2
    )
    assert [o["task"] for o in out] == ["bbc_headlines"] * 2
    assert all(isinstance(o["text"], str) for o in out)


def test_streaming_yields_growing_text_and_a_token_rate():
    model = ProPETLModel(
        tiny_backbone("llama", vocab_size=30522),
        PropetlConfig(petl="lora", lora_r=4),
        [TaskHeadSpec("bbc_headlines", 1)],
    )
    generator = Generator(model, load_tokenizer("tiny-llama"), max_new_tokens=6)
    chunks = list(generator.stream("bbc_headlines", "Shares rose in London today."))
    assert chunks[-1].done and chunks[-1].tokens == 6 and chunks[-1].tokens_per_second > 0
    texts = [c.text for c in chunks]
    assert all(a == b[: len(a)] for a, b in pairwise(texts))
    whole = generator.generate("bbc_headlines", ["Shares rose in London today."])[0]["text"]
    assert chunks[-1].text == whole
    with pytest.raises(ValueError, match="non-empty text"):
        next(generator.stream("bbc_headlines", "  "))


def test_cli_trains_and_predicts_with_a_tiny_decoder(tmp_path):
    run = CliRunner().invoke(
        cli,
        [
            "train",
            "--backbone",
            "tiny-llama",
            "--tasks",
            "bbc_headlines",
            "--petl",
            "adapter",
            "--max-steps",
            "2",
            "--max-examples",
            "8",
            "--batch-size",
            "4",
            "--max-length",
            "32",
            "--max-target-length",
            "6",
            "--label-smoothing",
            "0.1",
            "--run-dir",
            str(tmp_path / "run"),
            "--json",
        ],
    )
    assert run.exit_code == 0, run.output
    result = json.loads(run.output[run.output.index("{") :])
    assert "rougeL" in result["test_metrics"]["bbc_headlines"]
    predicted = CliRunner().invoke(
        cli,
        [
            "predict",
            "--model",
            result["model_dir"],
            "--task",
            "bbc_headlines",
            "Oil prices fell.",
            "--json",
        ],
    )
    assert predicted.exit_code == 0, predicted.output
    assert isinstance(json.loads(predicted.output)["text"], str)
    scored = CliRunner().invoke(
        cli,
        [
            "eval",
            "--model",
            result["model_dir"],
            "--task",
            "bbc_headlines",
            "--max-examples",
            "4",
            "--json",
        ],
    )
    assert scored.exit_code == 0, scored.output
    assert set(json.loads(scored.output)) == {"rouge1", "rouge2", "rougeL", "main"}


def test_text_to_text_task_on_an_encoder_is_refused(tmp_path):
    config = TrainConfig(backbone="tiny-bert", tasks=["bbc_headlines"], max_examples=8, max_steps=1)
    with pytest.raises(ConfigError, match="need a generative backbone"):
        train(config, tmp_path)


def test_generative_backbone_names():
    assert is_generative("tiny-t5") and is_generative("tiny-llama")
    assert not is_generative("tiny-bert")

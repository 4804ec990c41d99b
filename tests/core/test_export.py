"""Export to PEFT and to a merged HF model: same logits as the ProPETL model, clear refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from transformers import AutoModelForSequenceClassification

from propetl import PropetlConfig, ProPETLModel, TaskHeadSpec
from propetl.cli import cli
from propetl.export import ExportError, export_merged, export_peft, merged_model
from propetl.tiny import tiny_backbone, tiny_tokenizer

from .helpers import SMALL, batch, nudge

peft = pytest.importorskip("peft")

TASKS = (TaskHeadSpec("a", 2), TaskHeadSpec("b", 3, ("neg", "neu", "pos")))
SUPPORTED = [
    ("bert", "linear"),
    ("bert", "roberta"),
    ("roberta", "linear"),
    ("roberta", "roberta"),
    ("electra", "linear"),
    ("distilbert", "linear"),
]


@pytest.fixture(scope="module")
def bases(tmp_path_factory) -> dict[str, Path]:
    """Tiny random backbones saved to folders, so PEFT can load them as its base."""
    root = tmp_path_factory.mktemp("bases")
    out = {}
    for family in ("bert", "roberta", "electra", "distilbert"):
        tiny_backbone(family).save_pretrained(root / family)
        out[family] = root / family
    tiny_tokenizer(["a tiny corpus for a tiny tokenizer"]).save_pretrained(root / "bert")
    return out


def build(base: Path, sharing: str = "propetl", **overrides) -> ProPETLModel:
    options = {**SMALL, "petl": "lora", "keep": 0.5, "sharing": sharing, **overrides}
    model = ProPETLModel.from_backbone(str(base), PropetlConfig(**options), list(TASKS))
    nudge(model)
    with torch.no_grad():  # make the LoRA update matter (B starts at zero)
        for name, param in model.named_parameters():
            if name.endswith(".B"):
                param.mul_(20.0)
    return model.eval()


def logits(model, ids: torch.Tensor, mask: torch.Tensor, **kwargs) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask, **kwargs).logits


@pytest.mark.parametrize(("family", "head"), SUPPORTED)
def test_peft_and_merged_match(bases, tmp_path, family, head) -> None:
    model = build(bases[family], head=head)
    ids, mask = batch()
    expected = logits(model, ids, mask, task="b")

    export_peft(model, "b", tmp_path / "peft")
    config = json.loads((tmp_path / "peft" / "adapter_config.json").read_text())
    assert (
        config["r"] == SMALL["lora_r"]
        and config["base_model_name_or_path"] == Path(bases[family]).name
    )  # no server path
    base = AutoModelForSequenceClassification.from_pretrained(bases[family], num_labels=3)
    adapted = peft.PeftModel.from_pretrained(base, tmp_path / "peft").eval()
    torch.testing.assert_close(logits(adapted, ids, mask), expected, atol=1e-5, rtol=1e-5)
    with adapted.disable_adapter():  # the LoRA part is not negligible
        assert (logits(adapted, ids, mask) - expected).abs().max() > 1e-2

    export_merged(model, "b", tmp_path / "merged")
    merged = AutoModelForSequenceClassification.from_pretrained(tmp_path / "merged").eval()
    torch.testing.assert_close(logits(merged, ids, mask), expected, atol=1e-5, rtol=1e-5)
    assert merged.config.id2label == {0: "neg", 1: "neu", 2: "pos"}


def test_layers_get_their_own_masked_weights(bases, tmp_path) -> None:
    model = build(bases["bert"], sharing="propetl-or")
    export_peft(model, "a", tmp_path)
    from safetensors.torch import load_file

    saved = load_file(str(tmp_path / "adapter_model.safetensors"))
    key = "base_model.model.bert.encoder.layer.{}.attention.self.query.lora_A.weight"
    first, second = saved[key.format(0)], saved[key.format(1)]
    proto = model.banks["lora_query"].prototype().get("A").detach()
    assert not torch.equal(first, second)
    assert 0 < (first != 0).float().mean() < 1  # a masked copy of the prototype
    torch.testing.assert_close(first[first != 0], proto[first != 0])


def test_merge_uses_the_masks(bases) -> None:
    """Folding the unmasked prototype (the public code's bug) would change the logits."""
    model = build(bases["bert"])
    ids, mask = batch()
    merged = merged_model(model, "a")
    expected = logits(model, ids, mask, task="a")
    torch.testing.assert_close(logits(merged, ids, mask), expected, atol=1e-5, rtol=1e-5)
    scale = model.config.lora_alpha / model.config.lora_r
    with torch.no_grad():
        proto = model.banks["lora_query"].prototype()
        query = merged.bert.encoder.layer[0].attention.self.query
        query.weight += scale * (proto["B"] @ proto["A"]) - scale * (
            model.banks["lora_query"].effective("a")["B"][0]
            @ model.banks["lora_query"].effective("a")["A"][0]
        )
    assert (logits(merged, ids, mask) - expected).abs().max() > 1e-2


def test_linear_head_through_tanh_keeps_large_logits(bases, tmp_path) -> None:
    """The 2^-24 / 2^24 mapping stays exact for large logits, to fp32 rounding: PEFT keeps
    the hidden states bit-for-bit, but HF's head multiplies by a padded [W; 0], which a CPU
    kernel may sum in another order (a few ulps); merging also rounds the hidden states."""
    model = build(bases["roberta"], sharing="none")
    with torch.no_grad():
        model.heads["a"].linear_layers()[-1][0].mul_(300.0)
    ids, mask = batch()
    expected = logits(model, ids, mask, task="a")
    assert expected.abs().max() > 50
    base = AutoModelForSequenceClassification.from_pretrained(bases["roberta"])
    adapted = peft.PeftModel.from_pretrained(base, export_peft(model, "a", tmp_path)).eval()
    # another summation order errs by a few ulps of the largest terms, so a logit near 0
    # carries the absolute error of the largest one
    scale = float(expected.abs().max())
    torch.testing.assert_close(logits(adapted, ids, mask), expected, atol=4e-6 * scale, rtol=4e-6)
    torch.testing.assert_close(
        logits(merged_model(model, "a"), ids, mask), expected, atol=1e-5 * scale, rtol=1e-5
    )


@pytest.mark.parametrize(
    ("family", "overrides", "message"),
    [
        ("bert", {"petl": "adapter"}, "only LoRA tasks"),
        ("bert", {"petl": "prefix"}, "only LoRA tasks"),
        ("bert", {"pooling": "mean"}, "mean pooling"),
        ("electra", {"head": "roberta"}, "uses gelu"),
        ("distilbert", {"head": "roberta"}, "uses relu"),
    ],
)
def test_refusals_are_clear(bases, tmp_path, family, overrides, message) -> None:
    model = build(bases[family], **overrides)
    for export in (export_peft, export_merged):
        with pytest.raises(ExportError, match=message):
            export(model, "a", tmp_path / export.__name__)
        assert not (tmp_path / export.__name__).exists()
    with pytest.raises(KeyError, match="unknown task 'zz'"):
        export_peft(model, "zz", tmp_path)


def test_refuses_too_many_labels_for_the_hf_head(bases, tmp_path) -> None:
    model = ProPETLModel.from_backbone(
        str(bases["distilbert"]),
        PropetlConfig(**{**SMALL, "petl": "lora"}),
        [TaskHeadSpec("wide", 20)],
    )
    with pytest.raises(ExportError, match="needs 40 <= hidden size 32"):
        export_merged(model, "wide", tmp_path)


def test_cli_export_formats(bases, tmp_path) -> None:
    model = build(bases["bert"])
    model.save_pretrained(tmp_path / "model")
    ids, mask = batch()
    expected = logits(model, ids, mask, task="b")
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(cli, ["export", "--model", str(tmp_path / "model"), *args])

    result = run("--task", "b", "--format", "merged", "--out", str(tmp_path / "merged"))
    assert result.exit_code == 0, result.output
    merged = AutoModelForSequenceClassification.from_pretrained(tmp_path / "merged").eval()
    torch.testing.assert_close(logits(merged, ids, mask), expected, atol=1e-5, rtol=1e-5)
    assert (tmp_path / "merged" / "tokenizer_config.json").is_file()  # the base's, copied

    result = run("--task", "b", "--format", "peft", "--out", str(tmp_path / "peft"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "peft" / "adapter_model.safetensors").is_file()

    result = run("--task", "a", "--out", str(tmp_path / "copy"))
    assert result.exit_code == 0 and (tmp_path / "copy" / "tasks" / "a").is_dir()

    result = run("--format", "peft", "--out", str(tmp_path / "x"))
    assert result.exit_code != 0 and "exports one task" in result.output

    adapter = build(bases["bert"], petl="adapter")
    adapter.save_pretrained(tmp_path / "adapter")
    result = runner.invoke(
        cli,
        [
            "export",
            "--model",
            str(tmp_path / "adapter"),
            "--task",
            "a",
            "--format",
            "merged",
            "--out",
            str(tmp_path / "y"),
        ],
    )
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "only LoRA tasks" in lines[0] and "propetl format" in lines[0]

"""Export of generative LoRA tasks (tiny T5 and Llama): a PEFT adapter and a merged model give
the ProPETL model's teacher-forced logits and greedy generations; other tasks are refused."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

from propetl import PropetlConfig, ProPETLModel, TaskHeadSpec
from propetl.cli import cli
from propetl.export import ExportError, check_config, export_merged, export_peft, export_task
from propetl.tiny import TINY_GENERATIVE, tiny_backbone, tiny_tokenizer

peft = pytest.importorskip("peft")

AUTO = {"t5": AutoModelForSeq2SeqLM, "llama": AutoModelForCausalLM}
TASK_TYPE = {"t5": "SEQ_2_SEQ_LM", "llama": "CAUSAL_LM"}
# T5: not a bare "q" / "v", which would also match the decoder's cross-attention
TARGETS = {"t5": ["SelfAttention.q", "SelfAttention.v"], "llama": ["q_proj", "v_proj"]}
TASKS = (TaskHeadSpec("a", 1), TaskHeadSpec("b", 1))


@pytest.fixture(scope="module")
def bases(tmp_path_factory) -> dict[str, Path]:
    """Tiny random generative backbones (and a tokenizer) saved where PEFT / Auto load them."""
    root = tmp_path_factory.mktemp("generative-bases")
    tokenizer = tiny_tokenizer(["a tiny corpus for a tiny tokenizer"])
    for family in TINY_GENERATIVE:
        tiny_backbone(family).save_pretrained(root / family)
        tokenizer.save_pretrained(root / family)
    return {family: root / family for family in TINY_GENERATIVE}


def build(base: Path, petl: str = "lora", sharing: str = "propetl") -> ProPETLModel:
    """A model whose LoRA matters: trainable tensors nudged (each task's mask scores away from
    the start all tasks share), B scaled up from its zero init."""
    torch.manual_seed(0)  # the same nudges whichever tests ran before
    config = PropetlConfig(petl=petl, sharing=sharing, keep=0.5, lora_r=4, bottleneck=8)
    model = ProPETLModel.from_backbone(str(base), config, list(TASKS))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.requires_grad:
                scale = param.std() if ".scores." in name else 0.05
                param.add_(torch.randn_like(param) * scale)
            if name.endswith(".B"):
                param.mul_(20.0)
    return model.eval()


def inputs(family: str) -> dict[str, torch.Tensor]:
    """A left-padded batch (T5: with decoder inputs, for a teacher-forced forward)."""
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 256, (3, 8), generator=generator)
    mask = torch.ones_like(ids)
    ids[0, :3], mask[0, :3] = 0, 0
    out = {"input_ids": ids, "attention_mask": mask}
    if family == "t5":
        out["decoder_input_ids"] = torch.randint(5, 256, (3, 5), generator=generator)
    return out


def logits(model, batch: dict[str, torch.Tensor], **kwargs) -> torch.Tensor:
    with torch.no_grad():
        return model(**batch, **kwargs).logits


def greedy(model, batch: dict[str, torch.Tensor], prompt_len: int | None) -> torch.Tensor:
    """Greedy ids of a plain HF model (decoder-only: the prompt cut off, as ProPETL does)."""
    with torch.no_grad():
        out = model.generate(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            max_new_tokens=6,
            do_sample=False,
            pad_token_id=0,
        )
    return out if prompt_len is None else out[:, prompt_len:]


@pytest.mark.parametrize("family", TINY_GENERATIVE)
def test_peft_adapter_matches(bases, tmp_path, family) -> None:
    model = build(bases[family], sharing="propetl-or")
    batch = inputs(family)
    expected = logits(model, batch, task="b")
    export_peft(model, "b", tmp_path)
    config = json.loads((tmp_path / "adapter_config.json").read_text())
    assert config["task_type"] == TASK_TYPE[family] and config["target_modules"] == TARGETS[family]
    assert config["modules_to_save"] is None  # nothing but LoRA trains on a generative task
    saved = load_file(str(tmp_path / "adapter_model.safetensors"))
    assert len(saved) == 2 * 2 * model.num_layers  # A and B of q and v in every layer
    base = AUTO[family].from_pretrained(bases[family])
    adapted = peft.PeftModel.from_pretrained(base, tmp_path).eval()
    torch.testing.assert_close(logits(adapted, batch), expected, atol=1e-5, rtol=1e-5)
    with adapted.disable_adapter():  # the LoRA part is not negligible
        assert (logits(adapted, batch) - expected).abs().max() > 1e-2


def test_t5_decoder_blocks_get_their_own_masks(bases, tmp_path) -> None:
    """Encoder and decoder blocks share one prototype, each block with its own mask."""
    model = build(bases["t5"])
    export_peft(model, "a", tmp_path)
    saved = load_file(str(tmp_path / "adapter_model.safetensors"))
    key = "base_model.model.{}.layer.0.SelfAttention.q.lora_A.weight"
    encoder, decoder = saved[key.format("encoder.block.0")], saved[key.format("decoder.block.0")]
    proto = model.banks["lora_query"].prototype()["A"].detach()
    assert not torch.equal(encoder, decoder)
    assert 0 < (decoder != 0).float().mean() < 1
    torch.testing.assert_close(decoder[decoder != 0], proto[decoder != 0])
    assert not any("EncDecAttention" in name for name in saved)


@pytest.mark.parametrize("family", TINY_GENERATIVE)
def test_merged_model_matches_logits_and_generation(bases, tmp_path, family) -> None:
    model = build(bases[family])
    batch = inputs(family)
    expected = logits(model, batch, task="a")
    export_merged(model, "a", tmp_path)
    merged = AUTO[family].from_pretrained(tmp_path).eval()
    assert type(merged).__name__ == type(model.backbone).__name__
    assert (tmp_path / "tokenizer_config.json").is_file()  # the base's, copied
    # a merged W sums in another order than W x + B(A x): a few fp32 ulps of the logits
    torch.testing.assert_close(logits(merged, batch), expected, atol=5e-5, rtol=1e-4)
    ours = model.generate(
        batch["input_ids"], batch["attention_mask"], task="a", max_new_tokens=6, do_sample=False
    )
    prompt_len = None if family == "t5" else batch["input_ids"].shape[1]
    assert torch.equal(greedy(merged, batch, prompt_len), ours)
    other = model.generate(
        batch["input_ids"], batch["attention_mask"], task="b", max_new_tokens=6, do_sample=False
    )
    assert not torch.equal(other, ours)  # the tasks' masks make a difference


@pytest.mark.parametrize("family", TINY_GENERATIVE)
def test_adapter_tasks_are_refused(bases, tmp_path, family) -> None:
    model = build(bases[family], petl="adapter")
    for export in (export_peft, export_merged):
        with pytest.raises(ExportError, match=r"only LoRA tasks fit .*use the propetl format"):
            export(model, "a", tmp_path / export.__name__)
        assert not (tmp_path / export.__name__).exists()
    with pytest.raises(ExportError, match=f"a standard {family} model"):
        check_config(model.config, "a", "merged", family)


def test_generative_pooling_is_not_a_refusal() -> None:
    """Generative tasks have no pooled head, so the classifiers' pooling check does not apply."""
    config = PropetlConfig(petl="lora", pooling="mean")
    check_config(config, "a", "peft", "llama")
    check_config(config, "a", "merged", "t5")
    with pytest.raises(ExportError, match="mean pooling"):
        check_config(config, "a", "merged", "bert")


def test_cli_exports_a_generative_task(bases, tmp_path) -> None:
    model = build(bases["llama"])
    model.save_pretrained(tmp_path / "model")
    batch = inputs("llama")
    expected = logits(model, batch, task="b")
    runner = CliRunner()
    for fmt in ("merged", "peft"):
        result = runner.invoke(
            cli,
            [
                "export",
                "--model",
                str(tmp_path / "model"),
                "--task",
                "b",
                "--format",
                fmt,
                "--out",
                str(tmp_path / fmt),
            ],
        )
        assert result.exit_code == 0, result.output
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged").eval()
    # a merged W sums in another order than W x + B(A x): a few fp32 ulps of the logits
    torch.testing.assert_close(logits(merged, batch), expected, atol=5e-5, rtol=1e-4)
    base = AutoModelForCausalLM.from_pretrained(bases["llama"])
    adapted = peft.PeftModel.from_pretrained(base, tmp_path / "peft").eval()
    torch.testing.assert_close(logits(adapted, batch), expected, atol=1e-5, rtol=1e-5)


def test_api_export_zip_of_a_generative_task(bases, tmp_path, monkeypatch) -> None:
    """The zip the API / Models tab serve, for a saved T5 LoRA prototype (registry row faked)."""
    import zipfile

    from app import exports, settings

    monkeypatch.setenv("PROPETL_DATA_DIR", str(tmp_path / "data"))
    settings.reset_settings()
    model = build(bases["t5"])
    model.save_pretrained(tmp_path / "model")
    proto = SimpleNamespace(
        uid="0123456789abcdef",
        config=model.config.to_dict(),
        artifact_path=str(tmp_path / "model"),
        mask_sets=[SimpleNamespace(task=SimpleNamespace(name="a"))],
        backbone=SimpleNamespace(name="tiny-t5"),
    )
    try:
        path = exports.export_zip(proto, "a", "merged")  # type: ignore[arg-type]
        with zipfile.ZipFile(path) as archive:
            archive.extractall(tmp_path / "unzipped")
        [folder] = (tmp_path / "unzipped").iterdir()
        merged = AutoModelForSeq2SeqLM.from_pretrained(folder).eval()
        batch = inputs("t5")
        torch.testing.assert_close(
            logits(merged, batch), logits(model, batch, task="a"), atol=1e-5, rtol=1e-5
        )
        proto.config = build(bases["t5"], petl="adapter").config.to_dict()
        with pytest.raises(ExportError, match="only LoRA tasks"):
            exports.export_zip(proto, "a", "peft")  # type: ignore[arg-type]
    finally:
        settings.reset_settings()


def test_export_task_dispatches_and_refuses_unknown_formats(bases, tmp_path) -> None:
    model = build(bases["t5"])
    with pytest.raises(ExportError, match="unknown export format 'onnx'"):
        export_task(model, "a", tmp_path / "x", "onnx")
    out = export_task(model, "b", tmp_path / "peft", "peft")
    assert (out / "adapter_model.safetensors").is_file()
    assert "AutoModelForSeq2SeqLM" in (out / "README.md").read_text()

"""Export one ProPETL task to the Hugging Face ecosystem, with identical logits.

Two formats, both for `AutoModelForSequenceClassification` of the backbone's family:

- `export_peft`: a standard PEFT LoRA adapter folder (`adapter_config.json` +
  `adapter_model.safetensors`). Each layer's `lora_A` / `lora_B` is that layer's masked tensor
  (prototype * mask[l, task]); the task head travels as PEFT `modules_to_save`.
- `export_merged`: a plain HF model folder (`save_pretrained`): the masked LoRA update is folded
  into W_q / W_v (W += (alpha / r) (B * m_B) (A * m_A)) and the head mapped into HF's head.

HF's sequence-classification heads are `out(act(dense(h[:, 0])))` (with dropouts):

| family | dense | act | out |
|---|---|---|---|
| bert | `bert.pooler.dense` | tanh | `classifier` |
| roberta | `classifier.dense` | tanh | `classifier.out_proj` |
| electra | `classifier.dense` | gelu | `classifier.out_proj` |
| distilbert | `pre_classifier` | relu | `classifier` |

Our "roberta" head (Linear, tanh, Linear on the first token) maps one to one where act is tanh.
Our "linear" head (W h + b) maps exactly where act(x) - act(-x) = x (gelu, relu): dense =
[W; -W; 0], out = [I, -I, 0]. Where act is tanh it maps through tanh's linear range: dense =
2^-24 [W; 0], out = 2^24 [I, 0]; scaling by a power of two is exact, and tanh(y) rounds to y in
fp32 for |y| < 2^-13, so logits match to fp32 rounding for |logit| < 2^10 (not in fp16, where
the scaled weights underflow). Everything else (mean pooling, a tanh head where act is not tanh,
adapter and prefix tasks) is refused with `ExportError` rather than exported with other logits.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors.torch import save_file
from transformers import PretrainedConfig, PreTrainedModel
from transformers.models.auto.modeling_auto import MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING

from .config import PropetlConfig
from .layers import AdapterOutput, LoraLinear

if TYPE_CHECKING:
    from .model import ProPETLModel

FORMATS: tuple[str, ...] = ("propetl", "peft", "merged")
TANH_SHIFT = 24  # linear head through tanh: scale by 2^-24 before tanh, 2^24 after
PEFT_PREFIX = "base_model.model."
Tensors = dict[str, torch.Tensor]


class ExportError(ValueError):
    """A task cannot be exported to the requested format with identical logits."""


@dataclass(frozen=True)
class HeadLayout:
    """Where a family's HF sequence-classification head keeps its two linears."""

    dense: str  # d -> d linear before the activation ("{base}" = the model's base prefix)
    activation: str  # "tanh" | "gelu" | "relu"
    out: str  # d -> num_labels linear
    modules: tuple[str, ...]  # PEFT modules_to_save that hold them


HEAD_LAYOUTS: dict[str, HeadLayout] = {
    "bert": HeadLayout("{base}.pooler.dense", "tanh", "classifier", ("pooler", "classifier")),
    "roberta": HeadLayout("classifier.dense", "tanh", "classifier.out_proj", ("classifier",)),
    "electra": HeadLayout("classifier.dense", "gelu", "classifier.out_proj", ("classifier",)),
    "distilbert": HeadLayout("pre_classifier", "relu", "classifier",
                             ("pre_classifier", "classifier")),
}


# ------------------------------------------------------------------ checks

def check_config(config: PropetlConfig, task: str, fmt: str, family: str) -> None:
    """Refuse, from the config alone, what `fmt` cannot represent with identical logits."""
    if fmt not in ("peft", "merged"):
        raise ExportError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    if config.petl != "lora":
        if fmt == "peft":
            where, why = "a PEFT adapter", "PEFT has no adapter or prefix type computing the same"
        elif config.petl == "adapter":
            where, why = f"a standard {family} model", "an adapter is an extra nonlinear layer"
        else:
            where, why = f"a standard {family} model", "prefix keys / values are not weights"
        raise ExportError(f"cannot export {config.petl} task {task!r} as {fmt}: only LoRA tasks "
                          f"fit {where} ({why}); use the propetl format")
    if config.pooling != "cls":
        raise ExportError(f"cannot export task {task!r} as {fmt}: its head uses "
                          f"{config.pooling} pooling, and HF sequence classifiers pool the "
                          "first token; use the propetl format")


def _check(model: ProPETLModel, task: str, fmt: str) -> None:
    model._check_task(task)
    check_config(model.config, task, fmt, model.family.name)
    _head_layout(model, task)


def _head_layout(model: ProPETLModel, task: str) -> HeadLayout:
    family = model.family.name
    layout = HEAD_LAYOUTS.get(family)
    if layout is None:
        raise ExportError(f"no HF head mapping for family {family!r}")
    kind = model.config.head
    labels = model.task_specs[task].num_labels
    if kind == "roberta" and layout.activation != "tanh":
        raise ExportError(
            f"cannot export task {task!r}: its 'roberta' head (dense, tanh, out) has no exact "
            f"equivalent in {family}'s HF head, which uses {layout.activation}; use the propetl "
            "format (or a 'linear' head)")
    need = labels if layout.activation == "tanh" else 2 * labels
    if kind == "linear" and need > model.hidden_size:
        raise ExportError(f"cannot export task {task!r}: mapping a linear head of {labels} labels "
                          f"into {family}'s HF head needs {need} <= hidden size "
                          f"{model.hidden_size}")
    return layout


# ------------------------------------------------------------------ tensors

def _seqcls_class(config: PretrainedConfig) -> type[PreTrainedModel]:
    try:
        return MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING[type(config)]
    except KeyError as err:
        raise ExportError(f"transformers has no sequence-classification model for "
                          f"{config.model_type!r}") from err


def _base_prefix(model: ProPETLModel) -> str:
    return _seqcls_class(model.backbone.config).base_model_prefix


def head_tensors(model: ProPETLModel, task: str) -> Tensors:
    """The task head as parameters of the family's HF sequence-classification head (fp32)."""
    layout = _head_layout(model, task)
    base = _base_prefix(model)
    net = model.heads[task].net
    d, labels = model.hidden_size, model.task_specs[task].num_labels
    with torch.no_grad():
        out = net[-1]
        w, b = out.weight.detach().float().cpu(), out.bias.detach().float().cpu()
        if model.config.head == "roberta":  # Dropout, Linear, Tanh, Dropout, Linear
            dense = net[1]
            dense_w = dense.weight.detach().float().cpu().clone()
            dense_b = dense.bias.detach().float().cpu().clone()
            out_w, out_b = w.clone(), b.clone()
        else:
            dense_w, dense_b = torch.zeros(d, d), torch.zeros(d)
            out_w, out_b = torch.zeros(labels, d), torch.zeros(labels)
            eye = torch.eye(labels)
            if layout.activation == "tanh":
                scale = 2.0 ** -TANH_SHIFT
                dense_w[:labels], dense_b[:labels] = w * scale, b * scale
                out_w[:, :labels] = eye / scale
            else:  # act(z) - act(-z) = z
                dense_w[:labels], dense_b[:labels] = w, b
                dense_w[labels:2 * labels], dense_b[labels:2 * labels] = -w, -b
                out_w[:, :labels], out_w[:, labels:2 * labels] = eye, -eye
    dense_path, out_path = layout.dense.format(base=base), layout.out.format(base=base)
    return {f"{dense_path}.weight": dense_w, f"{dense_path}.bias": dense_b,
            f"{out_path}.weight": out_w, f"{out_path}.bias": out_b}


def lora_tensors(model: ProPETLModel, task: str) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Per-layer masked (A [r, d], B [d, r]) of `task`, keyed by the projection's path in the
    bare backbone (e.g. `encoder.layer.3.attention.self.query`)."""
    out: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for target in model.config.lora_targets:
        weights = model.banks[f"lora_{target}"].materialise(task)
        path = getattr(model.family, target)
        for layer in range(model.num_layers):
            key = f"{model.family.layers}.{layer}.{path}"
            out[key] = (weights["A"][layer].detach().float().cpu().clone(),
                        weights["B"][layer].detach().float().cpu().clone())
    return out


def _base_name(model: ProPETLModel) -> str | None:
    from .backbones import BackboneError, resolve_path

    if not model.backbone_name:
        return None
    try:
        return resolve_path(model.backbone_name)
    except BackboneError:
        return model.backbone_name


def _labels(model: ProPETLModel, task: str) -> tuple[int, dict[int, str] | None]:
    spec = model.task_specs[task]
    names = dict(enumerate(spec.label_names)) if spec.label_names else None
    return spec.num_labels, names


def _copy_tokenizer(model: ProPETLModel, out: Path) -> None:
    """Save the backbone's tokenizer beside the model when it is a local folder (no network)."""
    source = Path(_base_name(model) or "")
    if (source / "tokenizer_config.json").is_file():
        from transformers import AutoTokenizer

        AutoTokenizer.from_pretrained(str(source)).save_pretrained(str(out))


def _write_readme(out: Path, text: str) -> None:
    (out / "README.md").write_text(text)


# ------------------------------------------------------------------ PEFT

def export_peft(model: ProPETLModel, task: str, out_dir: str | Path) -> Path:
    """Write `task` as a PEFT LoRA adapter for the backbone's AutoModelForSequenceClassification.

    Load it with `PeftModel.from_pretrained(AutoModelForSequenceClassification.from_pretrained(
    base, num_labels=N), out_dir)`.
    """
    _check(model, task, "peft")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    base = _base_prefix(model)
    layout = _head_layout(model, task)
    tensors: Tensors = {}
    for path, (a, b) in lora_tensors(model, task).items():
        tensors[f"{PEFT_PREFIX}{base}.{path}.lora_A.weight"] = a
        tensors[f"{PEFT_PREFIX}{base}.{path}.lora_B.weight"] = b
    for key, value in head_tensors(model, task).items():
        tensors[PEFT_PREFIX + key] = value
    cfg = model.config
    targets = sorted({getattr(model.family, t).rsplit(".", 1)[-1] for t in cfg.lora_targets})
    base_name = _base_name(model)
    adapter_config = {
        "peft_type": "LORA", "task_type": "SEQ_CLS", "base_model_name_or_path": base_name,
        "r": cfg.lora_r, "lora_alpha": cfg.lora_alpha, "lora_dropout": 0.0,
        "target_modules": targets, "modules_to_save": list(layout.modules), "bias": "none",
        "fan_in_fan_out": False, "use_rslora": False, "use_dora": False,
        "init_lora_weights": True, "inference_mode": True,
    }
    save_file({k: v.contiguous() for k, v in tensors.items()},
              str(out / "adapter_model.safetensors"), metadata={"format": "pt"})
    (out / "adapter_config.json").write_text(json.dumps(adapter_config, indent=2))
    labels, names = _labels(model, task)
    _write_readme(out, (
        f"# ProPETL task `{task}` as a PEFT LoRA adapter\n\n"
        f"Per-layer LoRA weights are the shared prototype times this task's layer masks; the task "
        f"head is saved as `modules_to_save` ({', '.join(layout.modules)}).\n\n"
        "```python\nfrom peft import PeftModel\n"
        "from transformers import AutoModelForSequenceClassification\n"
        f"base = AutoModelForSequenceClassification.from_pretrained({base_name!r}, "
        f"num_labels={labels})\n"
        f"model = PeftModel.from_pretrained(base, {str(out)!r}).eval()\n```\n"
        + (f"\nLabels: {json.dumps(names)}\n" if names else "")))
    return out


# ------------------------------------------------------------------ merged

def _plain_backbone_state(model: ProPETLModel) -> Tensors:
    """The backbone's weights without ProPETL's wrappers (`x.base.weight` -> `x.weight`)."""
    wrapped = {name for name, module in model.backbone.named_modules()
               if isinstance(module, (LoraLinear, AdapterOutput))}
    state: Tensors = {}
    for key, value in model.backbone.state_dict().items():
        module, _, param = key.rpartition(".")
        if module.endswith(".base") and module[:-5] in wrapped:
            key = f"{module[:-5]}.{param}"
        state[key] = value.detach().float().cpu().clone()
    return state


def merged_model(model: ProPETLModel, task: str) -> PreTrainedModel:
    """`task` as a plain HF sequence-classification model (LoRA folded, head mapped)."""
    _check(model, task, "merged")
    config = copy.deepcopy(model.backbone.config)
    labels, names = _labels(model, task)
    config.num_labels = labels
    if names:
        config.id2label = names
        config.label2id = {name: i for i, name in names.items()}
    cls = _seqcls_class(config)
    config.architectures = [cls.__name__]
    state = _plain_backbone_state(model)
    scale = model.config.lora_alpha / model.config.lora_r
    for path, (a, b) in lora_tensors(model, task).items():
        key = f"{path}.weight"
        state[key] = (state[key].double() + scale * (b.double() @ a.double())).float()
    classifier = cls(config).eval()
    missing, unexpected = getattr(classifier, cls.base_model_prefix).load_state_dict(
        state, strict=False)
    # A bare AutoModel may carry a pooler the classifier lacks (roberta) or vice versa.
    bad = [k for k in (*missing, *unexpected) if not k.startswith("pooler.")]
    if bad:
        raise ExportError(f"backbone weights do not fit {cls.__name__}: {bad[:5]}")
    head = head_tensors(model, task)
    missing, unexpected = classifier.load_state_dict(head, strict=False)
    if unexpected:
        raise ExportError(f"head does not fit {cls.__name__}: {unexpected}")
    return classifier


def export_merged(model: ProPETLModel, task: str, out_dir: str | Path) -> Path:
    """Write `task` as a plain HF folder loading with AutoModelForSequenceClassification."""
    classifier = merged_model(model, task)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    classifier.save_pretrained(out)
    _copy_tokenizer(model, out)
    note = ""
    if model.config.head == "linear" and HEAD_LAYOUTS[model.family.name].activation == "tanh":
        note = ("\nThe linear head is mapped through tanh's linear range (weights scaled by "
                f"2^-{TANH_SHIFT} before tanh and 2^{TANH_SHIFT} after): run it in fp32 or bf16, "
                "not fp16.\n")
    _write_readme(out, (
        f"# ProPETL task `{task}` as a merged {type(classifier).__name__}\n\n"
        "LoRA folded into the query / value weights with this task's masks; loads with "
        "`AutoModelForSequenceClassification.from_pretrained` (tokenizer: that of "
        f"`{_base_name(model)}`, saved here when it is a local folder).\n" + note))
    return out


def export_task(model: ProPETLModel, task: str, out_dir: str | Path, fmt: str) -> Path:
    """Export one task as `peft` or `merged` (the ProPETL format copies folders, see the CLI)."""
    check_config(model.config, task, fmt, model.family.name)
    return export_peft(model, task, out_dir) if fmt == "peft" else \
        export_merged(model, task, out_dir)

"""Export one ProPETL LoRA task to the Hugging Face ecosystem, with identical logits.

Encoder classifiers export for `AutoModelForSequenceClassification` of the backbone's family;
generative LoRA tasks for the family's own LM class (`AutoModelForSeq2SeqLM` for T5,
`AutoModelForCausalLM` for Llama-style models), with the same teacher-forced logits and so the
same generations. Two formats:

- `export_peft`: a standard PEFT LoRA adapter folder (`adapter_config.json` +
  `adapter_model.safetensors`, task type SEQ_CLS, SEQ_2_SEQ_LM or CAUSAL_LM). Each layer's
  `lora_A` / `lora_B` is that layer's masked tensor (prototype * mask[l, task]); a classifier's
  head travels as PEFT `modules_to_save`. Generative tasks train nothing but LoRA (the backbone's
  LM head and embeddings stay frozen), so their adapter holds LoRA only.
- `export_merged`: a plain HF model folder (`save_pretrained`): the masked LoRA update is folded
  into W_q / W_v (W += (alpha / r) (B * m_B) (A * m_A)) of every layer (T5: every encoder and
  decoder block, each with its own mask over the one prototype); a classifier's head is mapped
  into HF's head.

PEFT's `target_modules` name each adapted projection by the shortest suffix that matches it
and nothing else (`query`, llama's `q_proj`; T5's `SelfAttention.q`, since a bare `q` would also
match the decoder's cross-attention `EncDecAttention.q`, which ProPETL leaves alone).

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
adapter and prefix tasks, of any family) is refused with `ExportError` rather than exported with
other logits.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors.torch import save_file
from transformers import PretrainedConfig, PreTrainedModel
from transformers.models.auto.modeling_auto import (
    MODEL_FOR_CAUSAL_LM_MAPPING,
    MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING,
    MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING,
)

from .config import PropetlConfig
from .families import FAMILIES, get_path
from .layers import AdapterOutput, LoraLinear, PfeifferAdapter

if TYPE_CHECKING:
    from .model import ProPETLModel

FORMATS: tuple[str, ...] = ("propetl", "peft", "merged")
TANH_SHIFT = 24  # linear head through tanh: scale by 2^-24 before tanh, 2^24 after
PEFT_PREFIX = "base_model.model."
Tensors = dict[str, torch.Tensor]


class ExportError(ValueError):
    """A task cannot be exported to the requested format with identical logits."""


@dataclass(frozen=True)
class HFTarget:
    """What a family kind exports to: the PEFT task type and the HF auto class."""

    peft_task: str
    auto_class: str  # name of the transformers auto class that loads the export
    mapping: Mapping[type[PretrainedConfig], type[PreTrainedModel]]  # config -> HF class
    what: str  # how an error names the model kind


HF_TARGETS: dict[str, HFTarget] = {
    "encoder": HFTarget(
        "SEQ_CLS",
        "AutoModelForSequenceClassification",
        MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING,
        "sequence-classification",
    ),
    "seq2seq": HFTarget(
        "SEQ_2_SEQ_LM",
        "AutoModelForSeq2SeqLM",
        MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING,
        "sequence-to-sequence LM",
    ),
    "causal": HFTarget(
        "CAUSAL_LM", "AutoModelForCausalLM", MODEL_FOR_CAUSAL_LM_MAPPING, "causal LM"
    ),
}


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
    "distilbert": HeadLayout(
        "pre_classifier", "relu", "classifier", ("pre_classifier", "classifier")
    ),
}


# ------------------------------------------------------------------ checks


def is_generative(family: str) -> bool:
    """Whether `family` (a family name or model type) answers with its own LM head."""
    return any(family == f.name or family in f.model_types for f in FAMILIES if f.generative)


#: Why a non-LoRA task does not fit a format, by (format, PETL kind).
REFUSALS: dict[tuple[str, str], str] = {
    ("peft", "adapter"): "PEFT has no bottleneck-adapter type",
    ("peft", "prefix"): "PEFT's prefix tuning moves every token's position by the prefix "
    "length, and finds no past_key_values argument on transformers 5 encoders",
    ("merged", "adapter"): "an adapter is an extra nonlinear layer",
    ("merged", "prefix"): "prefix keys / values are not weights",
}


def check_config(config: PropetlConfig, task: str, fmt: str, family: str) -> None:
    """Refuse, from the config alone, what `fmt` cannot represent with identical logits."""
    if fmt not in ("peft", "merged"):
        raise ExportError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    if config.petl != "lora":
        where = "a PEFT adapter" if fmt == "peft" else f"a standard {family} model"
        why = REFUSALS[(fmt, config.petl)]
        raise ExportError(
            f"cannot export {config.petl} task {task!r} as {fmt}: only LoRA tasks "
            f"fit {where} ({why}); use the propetl format"
        )
    if config.pooling != "cls" and not is_generative(family):
        raise ExportError(
            f"cannot export task {task!r} as {fmt}: its head uses "
            f"{config.pooling} pooling, and HF sequence classifiers pool the "
            "first token; use the propetl format"
        )


def _check(model: ProPETLModel, task: str, fmt: str) -> None:
    model._check_task(task)
    check_config(model.config, task, fmt, model.family.name)
    if not model.family.generative:
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
            "format (or a 'linear' head)"
        )
    need = labels if layout.activation == "tanh" else 2 * labels
    if kind == "linear" and need > model.hidden_size:
        raise ExportError(
            f"cannot export task {task!r}: mapping a linear head of {labels} labels "
            f"into {family}'s HF head needs {need} <= hidden size "
            f"{model.hidden_size}"
        )
    return layout


# ------------------------------------------------------------------ tensors


def _target(model: ProPETLModel) -> HFTarget:
    return HF_TARGETS[model.family.kind]


def _hf_class(model: ProPETLModel, config: PretrainedConfig) -> type[PreTrainedModel]:
    """The plain HF class an export of `model` loads as (its family kind's auto class)."""
    target = _target(model)
    try:
        return target.mapping[type(config)]
    except KeyError as err:
        raise ExportError(
            f"transformers has no {target.what} model for {config.model_type!r}"
        ) from err


def _base_prefix(model: ProPETLModel) -> str:
    return _hf_class(model, model.backbone.config).base_model_prefix


def _backbone_prefix(model: ProPETLModel) -> str:
    """Where the backbone sits inside the exported HF model: a classifier wraps the bare
    encoder (`bert.`); a generative backbone already is the exported LM class ("")."""
    return "" if model.family.generative else f"{_base_prefix(model)}."


def head_tensors(model: ProPETLModel, task: str) -> Tensors:
    """The task head as parameters of the family's HF sequence-classification head (fp32)."""
    layout = _head_layout(model, task)
    base = _base_prefix(model)
    layers = model.heads[task].linear_layers()
    d, labels = model.hidden_size, model.task_specs[task].num_labels
    with torch.no_grad():
        w, b = (t.detach().float().cpu() for t in layers[-1])
        if model.config.head == "roberta":  # Dropout, Linear, Tanh, Dropout, Linear
            dense_w, dense_b = (t.detach().float().cpu().clone() for t in layers[0])
            out_w, out_b = w.clone(), b.clone()
        else:
            dense_w, dense_b = torch.zeros(d, d), torch.zeros(d)
            out_w, out_b = torch.zeros(labels, d), torch.zeros(labels)
            eye = torch.eye(labels)
            if layout.activation == "tanh":
                scale = 2.0**-TANH_SHIFT
                dense_w[:labels], dense_b[:labels] = w * scale, b * scale
                out_w[:, :labels] = eye / scale
            else:  # act(z) - act(-z) = z
                dense_w[:labels], dense_b[:labels] = w, b
                dense_w[labels : 2 * labels], dense_b[labels : 2 * labels] = -w, -b
                out_w[:, :labels], out_w[:, labels : 2 * labels] = eye, -eye
    dense_path, out_path = layout.dense.format(base=base), layout.out.format(base=base)
    return {
        f"{dense_path}.weight": dense_w,
        f"{dense_path}.bias": dense_b,
        f"{out_path}.weight": out_w,
        f"{out_path}.bias": out_b,
    }


def layer_paths(model: ProPETLModel) -> list[str]:
    """Each ProPETL layer's path in the backbone, in the banks' layer order (encoder-decoders:
    the encoder's blocks, then the decoder's)."""
    family = model.family
    stacks = [family.layers] + ([family.decoder_layers] if family.decoder_layers else [])
    paths = [
        f"{stack}.{i}" for stack in stacks for i in range(len(get_path(model.backbone, stack)))
    ]  # type: ignore[arg-type]
    assert len(paths) == model.num_layers, (paths, model.num_layers)
    return paths


def peft_targets(model: ProPETLModel) -> list[str]:
    """PEFT `target_modules`: per LoRA target, the shortest suffix of its path inside a layer
    that names exactly the projections ProPETL adapts (PEFT's rule: `name == t` or
    `name.endswith("." + t)`)."""
    names = [name for name, _ in model.backbone.named_modules()]
    layers = layer_paths(model)
    out: set[str] = set()
    for target in model.config.lora_targets:
        path = getattr(model.family, target)
        wanted = {f"{layer}.{path}" for layer in layers}
        parts = path.split(".")
        suffixes = (".".join(parts[i:]) for i in range(len(parts) - 1, -1, -1))
        out.add(
            next(
                s for s in suffixes if {n for n in names if n == s or n.endswith(f".{s}")} == wanted
            )
        )
    return sorted(out)


def lora_tensors(model: ProPETLModel, task: str) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Per-layer masked (A [r, d_in], B [d_out, r]) of `task`, keyed by the projection's path in
    the backbone (e.g. `encoder.layer.3.attention.self.query`, `decoder.block.1.layer.0.
    SelfAttention.v`)."""
    out: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    layers = layer_paths(model)
    for target in model.config.lora_targets:
        weights = model.banks[f"lora_{target}"].materialise(task)
        path = getattr(model.family, target)
        for layer, prefix in enumerate(layers):
            out[f"{prefix}.{path}"] = (
                weights["A"][layer].detach().float().cpu().clone(),
                weights["B"][layer].detach().float().cpu().clone(),
            )
    return out


def _base_name(model: ProPETLModel) -> str | None:
    from .backbones import BackboneError, resolve_path

    if not model.backbone_name:
        return None
    try:
        return resolve_path(model.backbone_name)
    except BackboneError:
        return model.backbone_name


def _portable_base(model: ProPETLModel) -> str | None:
    """The backbone as another machine names it (a hub name, never this server's path)."""
    from .backbones import portable_name

    return portable_name(model.backbone_name) if model.backbone_name else None


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


def _loader(model: ProPETLModel, task: str, base: str | None) -> str:
    """The line that loads the exported base model (for the READMEs)."""
    auto = _target(model).auto_class
    if model.family.generative:
        return f"{auto}.from_pretrained({base!r})"
    return f"{auto}.from_pretrained({base!r}, num_labels={_labels(model, task)[0]})"


def export_peft(model: ProPETLModel, task: str, out_dir: str | Path) -> Path:
    """Write `task` as a PEFT LoRA adapter for the backbone's HF class (a classifier:
    AutoModelForSequenceClassification; T5: AutoModelForSeq2SeqLM; Llama: AutoModelForCausalLM).

    Load it with `PeftModel.from_pretrained(AutoModelFor...from_pretrained(base), out_dir)`.
    """
    _check(model, task, "peft")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    prefix = PEFT_PREFIX + _backbone_prefix(model)
    tensors: Tensors = {}
    for path, (a, b) in lora_tensors(model, task).items():
        tensors[f"{prefix}{path}.lora_A.weight"] = a
        tensors[f"{prefix}{path}.lora_B.weight"] = b
    modules: list[str] = []
    if not model.family.generative:
        modules = list(_head_layout(model, task).modules)
        tensors.update({PEFT_PREFIX + k: v for k, v in head_tensors(model, task).items()})
    cfg = model.config
    base_name = _portable_base(model)
    adapter_config = {
        "peft_type": "LORA",
        "task_type": _target(model).peft_task,
        "base_model_name_or_path": base_name,
        "r": cfg.lora_r,
        "lora_alpha": cfg.lora_alpha,
        "lora_dropout": 0.0,
        "target_modules": peft_targets(model),
        "modules_to_save": modules or None,
        "bias": "none",
        "fan_in_fan_out": False,
        "use_rslora": False,
        "use_dora": False,
        "init_lora_weights": True,
        "inference_mode": True,
    }
    save_file(
        {k: v.contiguous() for k, v in tensors.items()},
        str(out / "adapter_model.safetensors"),
        metadata={"format": "pt"},
    )
    (out / "adapter_config.json").write_text(json.dumps(adapter_config, indent=2))
    names = None if model.family.generative else _labels(model, task)[1]
    saved = (
        f"the task head is saved as `modules_to_save` ({', '.join(modules)})"
        if modules
        else "the backbone's own LM head is used unchanged"
    )
    _write_readme(
        out,
        (
            f"# ProPETL task `{task}` as a PEFT LoRA adapter\n\n"
            f"Per-layer LoRA weights are the shared prototype times this task's layer masks; "
            f"{saved}.\n\n"
            "Load it anywhere with `pip install torch transformers peft`, from the folder that "
            "holds this README:\n\n"
            f"```python\nfrom peft import PeftModel\n"
            f"from transformers import AutoTokenizer, {_target(model).auto_class}\n"
            f"base = {_loader(model, task, base_name)}\n"
            f"model = PeftModel.from_pretrained(base, {out.name!r}).eval()\n"
            f"tokenizer = AutoTokenizer.from_pretrained({base_name!r})\n```\n"
            + (f"\nLabels: {json.dumps(names)}\n" if names else "")
        ),
    )
    return out


# ------------------------------------------------------------------ merged


def _plain_backbone_state(model: ProPETLModel) -> Tensors:
    """The backbone's weights without ProPETL's wrappers (`x.base.weight` -> `x.weight`,
    `x.base.dense.weight` -> `x.dense.weight` for a wrapped block)."""
    wrapped = {
        name
        for name, module in model.backbone.named_modules()
        if isinstance(module, (LoraLinear, AdapterOutput, PfeifferAdapter))
    }
    state: Tensors = {}
    for key, value in model.backbone.state_dict().items():
        parts = key.split(".")
        for i in range(len(parts) - 1, 0, -1):
            if parts[i] == "base" and ".".join(parts[:i]) in wrapped:
                key = ".".join(parts[:i] + parts[i + 1 :])
                break
        state[key] = value.detach().float().cpu().clone()
    return state


def merged_state(model: ProPETLModel, task: str) -> Tensors:
    """The backbone's plain weights with `task`'s masked LoRA update folded into every layer's
    targets: W += (alpha / r) B A (in float64, rounded once)."""
    state = _plain_backbone_state(model)
    scale = model.config.lora_alpha / model.config.lora_r
    for path, (a, b) in lora_tensors(model, task).items():
        key = f"{path}.weight"
        state[key] = (state[key].double() + scale * (b.double() @ a.double())).float()
    return state


def _blank_hf_model(model: ProPETLModel, config: PretrainedConfig) -> PreTrainedModel:
    """A freshly initialised instance of the export's HF class for `config`."""
    cls = _hf_class(model, config)
    config.architectures = [cls.__name__]
    return cls(config).eval()


def _merged_classifier(model: ProPETLModel, task: str) -> PreTrainedModel:
    config = copy.deepcopy(model.backbone.config)
    labels, names = _labels(model, task)
    config.num_labels = labels
    if names:
        config.id2label = names
        config.label2id = {name: i for i, name in names.items()}
    classifier = _blank_hf_model(model, config)
    cls = type(classifier)
    missing, unexpected = getattr(classifier, cls.base_model_prefix).load_state_dict(
        merged_state(model, task), strict=False
    )
    # A bare AutoModel may carry a pooler the classifier lacks (roberta) or vice versa.
    bad = [k for k in (*missing, *unexpected) if not k.startswith("pooler.")]
    if bad:
        raise ExportError(f"backbone weights do not fit {cls.__name__}: {bad[:5]}")
    head = head_tensors(model, task)
    missing, unexpected = classifier.load_state_dict(head, strict=False)
    if unexpected:
        raise ExportError(f"head does not fit {cls.__name__}: {unexpected}")
    return classifier


def _merged_lm(model: ProPETLModel, task: str) -> PreTrainedModel:
    lm = _blank_hf_model(model, copy.deepcopy(model.backbone.config))
    missing, unexpected = lm.load_state_dict(merged_state(model, task), strict=False)
    if missing or unexpected:
        raise ExportError(
            f"backbone weights do not fit {type(lm).__name__}: {[*missing, *unexpected][:5]}"
        )
    lm.generation_config = copy.deepcopy(model.backbone.generation_config)
    return lm


def merged_model(model: ProPETLModel, task: str) -> PreTrainedModel:
    """`task` as a plain HF model with its LoRA folded in: the family's LM class for a
    generative backbone, else its sequence classifier (head mapped)."""
    _check(model, task, "merged")
    return _merged_lm(model, task) if model.family.generative else _merged_classifier(model, task)


def export_merged(model: ProPETLModel, task: str, out_dir: str | Path) -> Path:
    """Write `task` as a plain HF folder loading with the family's auto class
    (AutoModelForSequenceClassification, AutoModelForSeq2SeqLM or AutoModelForCausalLM)."""
    merged = merged_model(model, task)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(out)
    _copy_tokenizer(model, out)
    note = ""
    if (
        model.config.head == "linear"
        and not model.family.generative
        and HEAD_LAYOUTS[model.family.name].activation == "tanh"
    ):
        note = (
            "\nThe linear head is mapped through tanh's linear range (weights scaled by "
            f"2^-{TANH_SHIFT} before tanh and 2^{TANH_SHIFT} after): run it in fp32 or bf16, "
            "not fp16.\n"
        )
    _write_readme(
        out,
        (
            f"# ProPETL task `{task}` as a merged {type(merged).__name__}\n\n"
            "LoRA folded into the query / value weights with this task's masks; loads with "
            f"`{_target(model).auto_class}.from_pretrained` from the folder that holds this "
            f"README (tokenizer: that of `{_portable_base(model)}`, saved here when the server "
            "had it locally):\n\n"
            f"```python\nfrom transformers import AutoTokenizer, {_target(model).auto_class}\n"
            f"model = {_target(model).auto_class}.from_pretrained({out.name!r}).eval()\n"
            f"tokenizer = AutoTokenizer.from_pretrained({out.name!r})\n```\n" + note
        ),
    )
    return out


def export_task(model: ProPETLModel, task: str, out_dir: str | Path, fmt: str) -> Path:
    """Export one task as `peft` or `merged` (the ProPETL format copies folders, see the CLI)."""
    check_config(model.config, task, fmt, model.family.name)
    return (
        export_peft(model, task, out_dir) if fmt == "peft" else export_merged(model, task, out_dir)
    )

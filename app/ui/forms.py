"""Form fields generated from the engine's config dataclasses, so an option is declared once.

Each field of `TrainConfig` and `PropetlConfig` becomes a `FieldSpec` (kind, choices, default,
section); `component()` turns one into a Gradio input. A new dataclass field appears in the
form by itself (in "Advanced" unless a section is named here).
"""

from __future__ import annotations

import types
import typing
from dataclasses import MISSING, dataclass, fields, is_dataclass
from typing import Any, Literal, get_args, get_origin, get_type_hints

import gradio as gr

from propetl import config as C

#: Fields the Launch tab draws itself (or never shows).
CUSTOM = {"backbone", "tasks", "propetl.extra"}
#: Choices of fields typed as plain `str` or `tuple[str, ...]`.
CHOICES: dict[str, tuple[str, ...]] = {
    "sampling": C.SAMPLING,
    "precision": C.PRECISIONS,
    "device": C.DEVICES,
    "propetl.lora_targets": ("query", "value"),
}
SECTIONS: dict[str, str] = {
    **dict.fromkeys(
        (
            "propetl.petl",
            "propetl.sharing",
            "propetl.keep",
            "propetl.bottleneck",
            "propetl.lora_r",
            "propetl.lora_alpha",
            "propetl.lora_targets",
            "propetl.prefix_len",
            "propetl.prefix_hidden",
        ),
        "method",
    ),
    **dict.fromkeys(
        (
            "lr",
            "mask_lr",
            "epochs",
            "max_steps",
            "batch_size",
            "max_examples",
            "eval_every",
            "max_length",
        ),
        "training",
    ),
    **dict.fromkeys(("max_target_length", "num_beams", "label_smoothing"), "generation"),
}
HELP: dict[str, str] = {
    "propetl.petl": "the shared prototype module: bottleneck adapter, LoRA or prefix",
    "propetl.sharing": "propetl: one mask per layer and task; propetl-or: OR with shared layer "
    "masks; none: ordinary per-task modules (baseline)",
    "propetl.keep": (
        "fraction of the prototype each mask keeps (blank: "
        + ", ".join(f"{v:g} {k}" for k, v in C.DEFAULT_KEEP.items())
        + ")"
    ),
    "propetl.bottleneck": "adapter hidden size",
    "propetl.lora_r": "LoRA rank",
    "propetl.lora_targets": "attention projections that get LoRA",
    "lr": "learning rate of the prototype and heads",
    "mask_lr": (
        "learning rate of the mask scores (blank: "
        + ", ".join(f"{v:g} {k}" for k, v in C.DEFAULT_MASK_LR.items())
        + ")"
    ),
    "epochs": "passes over the training data (ignored when max steps is set)",
    "max_steps": "stop after this many steps (blank: from epochs)",
    "max_examples": "use at most this many examples per split (blank: all)",
    "eval_every": "steps between dev evaluations (blank: 4 per run)",
    "early_stopping_patience": "stop after this many evaluations without improvement",
    "sampling": "how batches pick tasks: temperature, proportional or uniform",
    "save_every": "steps between checkpoints (blank: with each evaluation)",
    "max_target_length": "longest target (headline, summary, translation) in tokens; also the "
    "generation limit",
    "num_beams": "beams when evaluating by generation (1: greedy)",
    "label_smoothing": "label smoothing of the teacher-forced loss (0: none)",
    "seed": "seed of the data order and head initialisation",
    "data_seed": "seed of the train / dev / test split (fixed across training seeds, so their "
    "test scores pair up)",
    "propetl.adapter_placement": "pfeiffer: the paper's adapter, reading LN(h + x) after the FFN; "
    "ffn-output: reads the FFN output only (models saved before)",
    "propetl.seed": "seed of the shared mask-score draw (mask init 'shared')",
}
#: Labels that the field name alone would make ambiguous (two fields are named `seed`).
LABELS: dict[str, str] = {"seed": "Training seed", "propetl.seed": "Mask seed"}
#: Method fields that only mean something for one PETL kind (hidden for the others).
METHOD_ONLY: dict[str, str] = {
    "propetl.bottleneck": "adapter",
    "propetl.adapter_placement": "adapter",
    "propetl.lora_r": "lora",
    "propetl.lora_alpha": "lora",
    "propetl.lora_targets": "lora",
    "propetl.prefix_len": "prefix",
    "propetl.prefix_hidden": "prefix",
}


#: How field-name words are written in labels ("lora_r" -> "LoRA r").
ACRONYMS = {"petl": "PETL", "lora": "LoRA", "lr": "LR"}


@dataclass(frozen=True)
class FieldSpec:
    """One option of the job form."""

    key: str  # "lr" or "propetl.keep"
    kind: str  # "choice" | "multi" | "int" | "float" | "bool" | "text"
    default: Any
    optional: bool
    choices: tuple[str, ...] = ()
    section: str = "advanced"

    @property
    def label(self) -> str:
        if self.key in LABELS:
            return LABELS[self.key]
        words = self.key.split(".")[-1].split("_")
        words = [ACRONYMS.get(w, w) for w in words]
        name = " ".join(words)
        return name[0].upper() + name[1:]


def _unwrap(hint: Any) -> tuple[Any, bool]:
    args = get_args(hint)
    if get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0], True
    return hint, False


def _kind(key: str, hint: Any) -> tuple[str, tuple[str, ...]] | None:
    if get_origin(hint) is Literal:
        return "choice", tuple(str(a) for a in get_args(hint))
    if key in CHOICES:
        return ("multi" if get_origin(hint) in (tuple, list) else "choice"), CHOICES[key]
    simple = {bool: "bool", int: "int", float: "float", str: "text"}
    return (simple[hint], ()) if hint in simple else None


def _default(field: Any) -> Any:
    if field.default is not MISSING:
        return field.default
    if field.default_factory is not MISSING:
        return field.default_factory()
    return None


def config_fields(cls: type = C.TrainConfig, prefix: str = "") -> list[FieldSpec]:
    """Every form field of a config dataclass (nested dataclasses flattened with dots)."""
    hints = get_type_hints(cls)
    out: list[FieldSpec] = []
    for field in fields(cls):
        key = f"{prefix}{field.name}"
        hint, optional = _unwrap(hints[field.name])
        if key in CUSTOM:
            continue
        if is_dataclass(hint):
            out += config_fields(hint, f"{key}.")  # type: ignore[arg-type]
            continue
        kind = _kind(key, hint)
        if kind is None:
            continue
        default = _default(field)
        if isinstance(default, tuple):
            default = list(default)
        out.append(
            FieldSpec(key, kind[0], default, optional, kind[1], SECTIONS.get(key, "advanced"))
        )
    return out


def component(spec: FieldSpec) -> gr.components.Component:
    """The Gradio input of one option."""
    info = HELP.get(spec.key)
    common: dict[str, Any] = {
        "label": spec.label,
        "info": info,
        "elem_id": _elem_id(spec.key),
        "visible": shown_for(spec, None),
    }
    if spec.kind == "choice":
        return gr.Dropdown(list(spec.choices), value=spec.default, **common)
    if spec.kind == "multi":
        return gr.CheckboxGroup(list(spec.choices), value=spec.default, **common)
    if spec.kind == "bool":
        return gr.Checkbox(value=spec.default, **common)
    if spec.kind in ("int", "float") and spec.optional:  # a blank Number would send 0
        return gr.Textbox(value=_text(spec.default), placeholder="automatic", **common)
    if spec.kind in ("int", "float"):
        return gr.Number(value=spec.default, precision=0 if spec.kind == "int" else None, **common)
    return gr.Textbox(value=spec.default, **common)


def shown_for(spec: FieldSpec, petl: str | None) -> bool:
    """Whether the field applies to PETL kind `petl` (fields of one kind only are hidden for
    the others)."""
    only = METHOD_ONLY.get(spec.key)
    return only is None or only == (petl or "adapter")


def _elem_id(key: str) -> str:
    return "opt-" + key.replace(".", "-").replace("_", "-")


def _text(value: Any) -> str:
    return "" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def _coerce(spec: FieldSpec, value: Any) -> Any:
    if isinstance(value, str) and spec.kind in ("int", "float"):
        value = value.strip()
        try:
            value = (int(value) if spec.kind == "int" else float(value)) if value else None
        except ValueError:
            return value  # left for validation to name the field
    if value is None or value == "":
        return None
    if spec.kind == "int" and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def to_config(specs: list[FieldSpec], values: list[Any]) -> dict[str, Any]:
    """Form values -> a nested config dict (blank optional fields left to their defaults)."""
    config: dict[str, Any] = {}
    for spec, value in zip(specs, values, strict=True):
        value = _coerce(spec, value)
        if value is None and spec.optional:
            continue
        target = config
        *parents, name = spec.key.split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
        target[name] = value
    return config


def from_config(specs: list[FieldSpec], config: dict[str, Any]) -> list[Any]:
    """A (nested or flat `propetl.x`) config dict -> form values; missing keys give defaults."""
    out = []
    for spec in specs:
        value: Any = config.get(spec.key, MISSING)
        if value is MISSING:
            value = config
            for part in spec.key.split("."):
                value = value.get(part, MISSING) if isinstance(value, dict) else MISSING
        value = spec.default if value is MISSING else value
        out.append(_text(value) if spec.optional and spec.kind in ("int", "float") else value)
    return out

"""Configuration of a ProPETL model: what prototype, how it is shared, how masks are kept."""

from __future__ import annotations

import json
import math
import re
import types
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, Union

import yaml

PetlKind = Literal["adapter", "lora", "prefix"]
SharingMode = Literal["propetl", "propetl-or", "none"]
MaskMode = Literal["learned", "random"]
MaskInit = Literal["shared", "per-task"]
HeadKind = Literal["linear", "roberta"]
Pooling = Literal["cls", "mean"]
AdapterPlacement = Literal["pfeiffer", "ffn-output"]

PETL_KINDS: tuple[str, ...] = ("adapter", "lora", "prefix")
SHARING_MODES: tuple[str, ...] = ("propetl", "propetl-or", "none")
MASK_MODES: tuple[str, ...] = ("learned", "random")
MASK_INITS: tuple[str, ...] = ("shared", "per-task")
HEAD_KINDS: tuple[str, ...] = ("linear", "roberta")
POOLINGS: tuple[str, ...] = ("cls", "mean")
ADAPTER_PLACEMENTS: tuple[str, ...] = ("pfeiffer", "ffn-output")
#: Values that fields added later had implicitly before they existed: a saved config (model
#: folder, run folder) that lacks one of them was made that way.
SAVED_BEFORE: dict[str, Any] = {"adapter_placement": "ffn-output"}

#: Keep ratios used by the public ProPETL scripts.
PAPER_KEEP: dict[str, float] = {"adapter": 0.5, "lora": 0.1, "prefix": 0.1}
#: The product's: LoRA masks keep half of each shared A and B. In `bench/pareto.py` (r 32,
#: 3 seeds on one test set) keep 0.5 beat the scripts' 0.1 on rotten_tomatoes and
#: tweet_sentiment, as an added task by 2 and 5 points, as a single task by 0.3 and 2.3.
DEFAULT_KEEP: dict[str, float] = {**PAPER_KEEP, "lora": 0.5}


class ConfigError(ValueError):
    """Configuration values out of range or inconsistent: `problems` names each one, so that
    one error reports every bad field of a config at once."""

    def __init__(self, *problems: str) -> None:
        self.problems: list[str] = list(problems)
        super().__init__("; ".join(self.problems))

    def __reduce__(self):  # picklable across worker processes with every problem kept
        return (type(self), tuple(self.problems))


def _refuse(problems: list[str]) -> None:
    if problems:
        raise ConfigError(*problems)


def _conforms(value: Any, hint: Any) -> bool:
    """Whether `value` has the type a field's annotation names (ranges are `validate()`'s job)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        return any(_conforms(value, arg) for arg in args)
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin in (list, tuple):
        return isinstance(value, (list, tuple)) and all(_conforms(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict)
    if origin is Literal:
        return isinstance(value, str)  # which strings: validate() says
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True  # Any


def _type_problems(obj: Any) -> list[str]:
    """Every value of the wrong type (or non-finite number), each naming its field: checked
    before `problems()` compares values, so that no bare TypeError escapes."""
    hints = typing.get_type_hints(type(obj))
    out = []
    for f in fields(obj):
        value = getattr(obj, f.name)
        if not _conforms(value, hints[f.name]):
            out.append(
                f"{f.name} must be {_describe(hints[f.name])}, "
                f"got {_short(value)} ({type(value).__name__})"
            )
        elif isinstance(value, float) and not math.isfinite(value):
            out.append(f"{f.name} must be a finite number, got {value}")
    return out


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(arg) for arg in args)
    if origin in (list, tuple):
        return f"a list of {_describe(args[0]).split(' ', 1)[-1]}s"
    if origin is dict:
        return "a mapping"
    if origin is Literal:
        return "one of " + ", ".join(map(repr, args))
    names = {float: "a number", int: "an integer", str: "a string", type(None): "null"}
    if hint in names:
        return names[hint]
    return f"a mapping of {getattr(hint, '__name__', hint)} options"


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _under(section: str, cls: type, problem: str) -> str:
    """A nested config's problem as its parent reports it ("propetl.keep must be ...")."""
    first = problem.split(" ", 1)[0]
    if first in {f.name for f in fields(cls)}:
        return f"{section}.{problem}"
    return f"{section}: {problem}"


def _from_mapping(cls: type, data: Any) -> Any:
    """`cls(**data)`, refusing unknown fields together with the known fields' problems."""
    if not isinstance(data, dict):
        raise ConfigError(f"a {cls.__name__} is a mapping of options, got {type(data).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(str(k) for k in set(data) - known)
    if not unknown:
        return cls(**data)
    problems = [f"unknown config field(s): {', '.join(unknown)}"]
    try:
        cls(**{k: v for k, v in data.items() if k in known})
    except ConfigError as err:
        problems += err.problems
    raise ConfigError(*problems)


@dataclass
class PropetlConfig:
    """Everything that shapes the trainable part of a ProPETL model (not the training run).

    `keep` is the fraction of each masked tensor's entries that a mask keeps (the public code
    calls it "sparsity"). `masks` "random" is the paper's ablation: each mask is drawn once at
    random with the same number of kept entries and never trained (only the prototype trains).
    `mask_init` "shared": every task's learned scores start from the same seeded draw (seed
    `seed`), so distances between tasks measure what they learned; "per-task": each task draws
    its own scores (the public code's way; model folders saved before this option read so).
    """

    petl: PetlKind = "adapter"
    sharing: SharingMode = "propetl"
    keep: float | None = None
    masks: MaskMode = "learned"
    bottleneck: int = 64
    adapter_placement: AdapterPlacement = "pfeiffer"
    lora_r: int = 32
    lora_alpha: float = 48.0
    lora_targets: tuple[str, ...] = ("query", "value")
    prefix_len: int = 64
    prefix_hidden: int = 512
    head: HeadKind = "linear"
    pooling: Pooling = "cls"
    head_dropout: float = 0.1
    init_std: float = 0.02
    seed: int = 42
    mask_init: MaskInit = "shared"
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _refuse(_type_problems(self))
        self.lora_targets = tuple(self.lora_targets)
        if self.keep is None:
            self.keep = DEFAULT_KEEP.get(self.petl, 0.5)
        self.validate()

    @property
    def keep_ratio(self) -> float:
        assert self.keep is not None
        return self.keep

    @property
    def masked(self) -> bool:
        return self.sharing != "none"

    def validate(self) -> None:
        _refuse(self.problems())

    def problems(self) -> list[str]:
        """Every value out of range or inconsistent with another."""
        out: list[str] = []

        def need(ok: bool, message: str) -> None:
            if not ok:
                out.append(message)

        need(self.petl in PETL_KINDS, f"petl must be one of {PETL_KINDS}, got {self.petl!r}")
        need(
            self.sharing in SHARING_MODES,
            f"sharing must be one of {SHARING_MODES}, got {self.sharing!r}",
        )
        need(self.head in HEAD_KINDS, f"head must be one of {HEAD_KINDS}, got {self.head!r}")
        need(self.pooling in POOLINGS, f"pooling must be one of {POOLINGS}, got {self.pooling!r}")
        need(0.0 < self.keep_ratio <= 1.0, f"keep must be in (0, 1], got {self.keep}")
        need(self.masks in MASK_MODES, f"masks must be one of {MASK_MODES}, got {self.masks!r}")
        need(
            self.mask_init in MASK_INITS,
            f"mask_init must be one of {MASK_INITS}, got {self.mask_init!r}",
        )
        need(
            self.masks == "learned" or self.masked,
            f"masks {self.masks!r} needs sharing 'propetl' or 'propetl-or': sharing 'none' "
            "trains ordinary modules and has no masks",
        )
        need(self.bottleneck >= 1, f"bottleneck must be >= 1, got {self.bottleneck}")
        need(
            self.adapter_placement in ADAPTER_PLACEMENTS,
            f"adapter_placement must be one of {ADAPTER_PLACEMENTS}, "
            f"got {self.adapter_placement!r}",
        )
        need(self.lora_r >= 1, f"lora_r must be >= 1, got {self.lora_r}")
        need(self.lora_alpha > 0, f"lora_alpha must be > 0, got {self.lora_alpha}")
        need(
            len(self.lora_targets) > 0 and set(self.lora_targets) <= {"query", "value"},
            f"lora_targets must be a non-empty subset of ('query', 'value'), got {self.lora_targets}",
        )
        need(self.prefix_len >= 1, f"prefix_len must be >= 1, got {self.prefix_len}")
        need(self.prefix_hidden >= 1, f"prefix_hidden must be >= 1, got {self.prefix_hidden}")
        need(
            0.0 <= self.head_dropout < 1.0,
            f"head_dropout must be in [0, 1), got {self.head_dropout}",
        )
        return out

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["lora_targets"] = list(self.lora_targets)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PropetlConfig:
        return _from_mapping(cls, data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> PropetlConfig:
        return cls.from_dict(json.loads(text))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> PropetlConfig:
        return cls.from_json(Path(path).read_text())


@dataclass
class TaskHeadSpec:
    """What a task needs from the model: a name and an output size (1 = regression)."""

    name: str
    num_labels: int
    label_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name or self.name.startswith("."):
            raise ConfigError(f"invalid task name {self.name!r}")
        if self.num_labels < 1:
            raise ConfigError(f"task {self.name!r}: num_labels must be >= 1")
        if self.label_names is not None:
            self.label_names = tuple(self.label_names)
            if len(self.label_names) != self.num_labels:
                raise ConfigError(
                    f"task {self.name!r}: {len(self.label_names)} label names "
                    f"for {self.num_labels} labels"
                )

    @property
    def is_regression(self) -> bool:
        return self.num_labels == 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "num_labels": self.num_labels,
            "label_names": list(self.label_names) if self.label_names else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskHeadSpec:
        return cls(
            name=data["name"],
            num_labels=int(data["num_labels"]),
            label_names=tuple(data["label_names"]) if data.get("label_names") else None,
        )


#: Mask learning rates of the public ProPETL scripts, by PETL kind.
PAPER_MASK_LR: dict[str, float] = {"adapter": 3e-3, "lora": 3e-2, "prefix": 1e-4}
#: The product's defaults, for a joint run and a task added onto a prototype alike. The
#: adapter's scores train at 3e-2, not the scripts' 3e-3: in `bench/pareto.py` (3 seeds, paired
#: on one test set) 3e-2 scored higher on both tasks, as a single task and as an added task.
DEFAULT_MASK_LR: dict[str, float] = {**PAPER_MASK_LR, "adapter": 3e-2}
SAMPLING: tuple[str, ...] = ("temperature", "proportional", "uniform")
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16")
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")


@dataclass
class TrainConfig:
    """A training job: backbone, tasks, the ProPETL config and the hyperparameters.

    This is the one description of a job; the CLI reads it from YAML, the dashboard builds its
    form from it and the registry stores it as JSON.
    """

    backbone: str = "minilm-l6"
    tasks: list[str] = field(default_factory=lambda: ["rotten_tomatoes"])
    propetl: PropetlConfig = field(default_factory=PropetlConfig)
    lr: float = 1e-3
    mask_lr: float | None = None
    weight_decay: float = 0.1
    warmup_ratio: float = 0.1
    epochs: float = 1.0
    max_steps: int | None = None
    batch_size: int = 32
    eval_batch_size: int = 64
    max_length: int = 64
    eval_every: int | None = None
    early_stopping_patience: int | None = None
    sampling: str = "temperature"
    temperature: float = 10.0
    max_examples: int | None = None
    grad_clip: float = 1.0
    precision: str = "auto"
    device: str = "auto"
    seed: int = 42
    data_seed: int = 42  # the train / dev / test split: fixed whatever the training seed
    save_every: int | None = None
    # generative backbones (T5, Llama families): text-to-text training and evaluation
    max_target_length: int = 64
    label_smoothing: float = 0.0
    num_beams: int = 1

    def __post_init__(self) -> None:
        method: list[str] = []  # the ProPETL options' problems, reported with the job's own
        if isinstance(self.propetl, dict):
            try:
                self.propetl = PropetlConfig.from_dict(self.propetl)
            except ConfigError as err:
                method = [_under("propetl", PropetlConfig, p) for p in err.problems]
                self.propetl = PropetlConfig()
        problems = _type_problems(self)
        if not problems:
            self.tasks = list(self.tasks)
            if self.mask_lr is None:
                self.mask_lr = DEFAULT_MASK_LR[self.propetl.petl]
            problems = self.problems()
        _refuse(method + problems)

    def validate(self) -> None:
        _refuse(self.problems())

    def problems(self) -> list[str]:
        """Every value out of range or inconsistent with another."""
        out: list[str] = []

        def need(ok: bool, message: str) -> None:
            if not ok:
                out.append(message)

        need(bool(self.backbone), "backbone must not be empty")
        need(len(self.tasks) > 0, "tasks: give at least one task")
        need(len(set(self.tasks)) == len(self.tasks), f"tasks: duplicates in {self.tasks}")
        need(self.lr > 0, f"lr must be > 0, got {self.lr}")
        need(
            self.mask_lr is not None and self.mask_lr > 0,
            f"mask_lr must be > 0, got {self.mask_lr}",
        )
        need(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        need(0 <= self.warmup_ratio < 1, f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        need(self.epochs > 0, f"epochs must be > 0, got {self.epochs}")
        need(
            self.max_steps is None or self.max_steps >= 1,
            f"max_steps must be >= 1, got {self.max_steps}",
        )
        need(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        need(self.eval_batch_size >= 1, f"eval_batch_size must be >= 1, got {self.eval_batch_size}")
        need(
            8 <= self.max_length <= 4096, f"max_length must be in [8, 4096], got {self.max_length}"
        )
        need(
            self.eval_every is None or self.eval_every >= 1,
            f"eval_every must be >= 1, got {self.eval_every}",
        )
        need(
            self.early_stopping_patience is None or self.early_stopping_patience >= 1,
            f"early_stopping_patience must be >= 1, got {self.early_stopping_patience}",
        )
        need(
            self.sampling in SAMPLING, f"sampling must be one of {SAMPLING}, got {self.sampling!r}"
        )
        need(self.temperature > 0, f"temperature must be > 0, got {self.temperature}")
        need(
            self.max_examples is None or self.max_examples >= 4,
            f"max_examples must be >= 4, got {self.max_examples}",
        )
        need(self.grad_clip >= 0, f"grad_clip must be >= 0, got {self.grad_clip}")
        need(
            self.precision in PRECISIONS,
            f"precision must be one of {PRECISIONS}, got {self.precision!r}",
        )
        need(self.device in DEVICES, f"device must be one of {DEVICES}, got {self.device!r}")
        need(
            self.save_every is None or self.save_every >= 1,
            f"save_every must be >= 1, got {self.save_every}",
        )
        need(
            1 <= self.max_target_length <= 1024,
            f"max_target_length must be in [1, 1024], got {self.max_target_length}",
        )
        need(
            0.0 <= self.label_smoothing < 1.0,
            f"label_smoothing must be in [0, 1), got {self.label_smoothing}",
        )
        need(1 <= self.num_beams <= 16, f"num_beams must be in [1, 16], got {self.num_beams}")
        return out

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["propetl"] = self.propetl.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        return _from_mapping(cls, data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_saved_json(cls, text: str) -> TrainConfig:
        """A job config written by an earlier version: fields it lacks take the value they had
        implicitly then (`data_seed` was the training seed; `SAVED_BEFORE`)."""
        data = json.loads(text)
        if isinstance(data, dict):
            data.setdefault("data_seed", data.get("seed", 42))
            if isinstance(data.get("propetl"), dict):
                data["propetl"] = saved_propetl_dict(data["propetl"])
        return cls.from_dict(data)


def saved_propetl_dict(data: dict[str, Any]) -> dict[str, Any]:
    """A saved ProPETL config with the fields added since filled in as they were then."""
    return {**SAVED_BEFORE, **data}


class _ConfigLoader(yaml.SafeLoader):
    """PyYAML's safe loader reading `1e-3` as a number, as YAML 1.2 does (PyYAML reads YAML
    1.1, where it is text, and configs refuse text for numbers)."""


_ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$"),
    list("-+.0123456789"),
)


def load_yaml(text: str) -> Any:
    """A config, job spec, sweep file or grid value written in YAML."""
    return yaml.load(text, Loader=_ConfigLoader)

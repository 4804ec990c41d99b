"""`JobSpec`: the one description of a job, shared by the CLI, UI, API and workers.

The training options are not re-declared: `config` is the engine's `TrainConfig` dataclass,
validated by pydantic field by field and then by `TrainConfig.validate()`, whose messages
become pydantic errors located at the field they name. `LIMITS` bounds every number (the
PETL sizes also against the backbone's hidden size), and every problem is reported at once.

Validation context: `resolve` (default True) looks the backbone and tasks up; `owner` names
whose uploads a task like `reviews.csv` is; `paths` (the CLI and Python callers, run by the
machine's owner) lets tasks and backbones name server paths and jobs name any queue, which
API and dashboard jobs may not: their backbone folders must lie under
`PROPETL_BACKBONE_DIRS` and their queue be the default one or listed in `PROPETL_QUEUES`.
`labelling` lets a spec carry `label` (a batch-prediction job): only `app.labels`, which
checks that the prototype and the file are the caller's, and specs read back from the
registry set it; any other spec naming `label` is refused.
"""

from __future__ import annotations

import contextlib
import math
import re
import typing
from dataclasses import fields
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import InitErrorDetails, PydanticCustomError

from propetl.config import (
    DEVICES,
    PRECISIONS,
    SAMPLING,
    ConfigError,
    PropetlConfig,
    TrainConfig,
    load_yaml,
)
from propetl.continual import given_method_fields

from . import uploads
from .labels import LabelSpec
from .settings import get_settings

_TRAIN_FIELDS = frozenset(f.name for f in fields(TrainConfig))
_CONFIG_FIELDS = _TRAIN_FIELDS | {f.name for f in fields(PropetlConfig)}
#: Suffixes of a user's own data file given as a task.
DATA_SUFFIXES = uploads.DATA_SUFFIXES
#: (lowest, highest) of every number of a config ("propetl.x" for the PETL module's), or the
#: allowed values of a text field. The PETL sizes are bounded by the backbone too (`_sized`).
LIMITS: dict[str, tuple[float, float] | tuple[str, ...]] = {
    "lr": (1e-8, 10.0),
    "mask_lr": (1e-8, 100.0),
    "weight_decay": (0.0, 10.0),
    "warmup_ratio": (0.0, 0.99),
    "epochs": (0.001, 1000.0),
    "max_steps": (1, 10_000_000),
    "batch_size": (1, 4096),
    "eval_batch_size": (1, 4096),
    "max_length": (8, 4096),
    "eval_every": (1, 10_000_000),
    "early_stopping_patience": (1, 10_000),
    "temperature": (0.01, 1000.0),
    "max_examples": (4, 100_000_000),
    "grad_clip": (0.0, 1e4),
    "seed": (0, 2**32 - 1),
    "data_seed": (0, 2**32 - 1),
    "save_every": (1, 10_000_000),
    "max_target_length": (1, 1024),
    "label_smoothing": (0.0, 0.99),
    "num_beams": (1, 16),
    "sampling": SAMPLING,
    "precision": PRECISIONS,
    "device": DEVICES,
    "propetl.keep": (1e-6, 1.0),
    "propetl.bottleneck": (1, 65_536),
    "propetl.lora_r": (1, 65_536),
    "propetl.lora_alpha": (1e-6, 1e6),
    "propetl.prefix_len": (1, 1024),
    "propetl.prefix_hidden": (1, 65_536),
    "propetl.head_dropout": (0.0, 0.99),
    "propetl.init_std": (0.0, 10.0),
    "propetl.seed": (0, 2**32 - 1),
}
_QUEUE = re.compile(r"^[A-Za-z0-9_.\-]{1,100}$")


def _located(err: dict[str, Any]) -> list[InitErrorDetails]:
    """Re-locate each problem of a `ConfigError` ("lr must be > 0") at the field it names."""
    loc = tuple(err["loc"])
    if err["type"] != "value_error":
        return [
            InitErrorDetails(type=err["type"], loc=loc, input=err["input"], ctx=err.get("ctx", {}))
        ]
    error = err["ctx"]["error"]
    out = []
    for message in getattr(error, "problems", None) or [str(error)]:
        # "lr must be ...", "propetl.keep must be ...", "propetl: unknown config field(s)"
        path = tuple(message.split(" ", 1)[0].rstrip(":").split("."))
        out.append(
            InitErrorDetails(
                type=PydanticCustomError("config_error", "{message}", {"message": message}),
                loc=(*loc, *path) if path[-1] in _CONFIG_FIELDS else loc,
                input=err["input"],
            )
        )
    return out


def _engine_problems(config: Any) -> list[InitErrorDetails]:
    """The engine's own check of the whole config, which names the job's problems together
    with its ProPETL options' (pydantic stops at the nested options when they fail)."""
    if not isinstance(config, dict):
        return []
    try:
        TrainConfig.from_dict(config)
    except ConfigError as err:
        found = _located({"type": "value_error", "loc": (), "input": config, "ctx": {"error": err}})
        # only problems of one field (unknown names: pydantic has named each of them)
        return [e for e in found if e["loc"] not in ((), ("propetl",))]
    return []


def _custom(loc: tuple[str | int, ...], message: str, value: Any) -> InitErrorDetails:
    return InitErrorDetails(
        type=PydanticCustomError("spec_error", "{message}", {"message": message}),
        loc=loc,
        input=value,
    )


def _get(config: dict[str, Any], key: str) -> Any:
    for part in key.split("."):
        config = config.get(part) if isinstance(config, dict) else None  # type: ignore[assignment]
    return config


def _loc(key: str) -> tuple[str, ...]:
    return tuple(key.split("."))


def _number_fields(cls: type) -> dict[str, str]:
    """Each number field of a config dataclass -> what it must be ("an integer", "a number")."""
    out = {}
    for name, hint in typing.get_type_hints(cls).items():
        args = typing.get_args(hint) or (hint,)
        if int in args or float in args:
            out[name] = "an integer" if int in args else "a number"
    return out


_NUMBERS = {(): _number_fields(TrainConfig), ("propetl",): _number_fields(PropetlConfig)}


def type_problems(config: Any, submitted: bool = True) -> list[InitErrorDetails]:
    """Booleans and texts given for numbers (`"max_steps": true`, `"lr": "0.1"`), which
    pydantic would read as 1 and 0.1 (the engine refuses them too); when `submitted`, any
    option in `propetl.extra`, which nothing reads."""
    if not isinstance(config, dict):
        return []
    errors = []
    for path, numbers in _NUMBERS.items():
        section = _get(config, ".".join(path)) if path else config
        for name, kind in numbers.items():
            value = section.get(name) if isinstance(section, dict) else None
            if isinstance(value, bool | str):
                errors.append(
                    _custom(
                        (*path, name),
                        f"{name} must be {kind}, got {value!r} ({type(value).__name__})",
                        value,
                    )
                )
    extra = _get(config, "propetl.extra")
    if submitted and isinstance(extra, dict) and extra:
        errors.append(
            _custom(
                ("propetl", "extra"),
                f"extra takes no options (nothing reads them), got {', '.join(map(str, extra))}",
                extra,
            )
        )
    return errors


def limit_problems(config: Any) -> list[InitErrorDetails]:
    """Every number out of `LIMITS` (or not finite), every text not among its values."""
    if not isinstance(config, dict):
        return []
    errors = []
    for key, limit in LIMITS.items():
        value = _get(config, key)
        if value is None:
            continue
        if isinstance(limit[0], str):
            if isinstance(value, str) and value not in limit:
                errors.append(
                    _custom(
                        _loc(key),
                        f"{key.split('.')[-1]} must be one of "
                        f"{', '.join(map(str, limit))}, got {value!r}",
                        value,
                    )
                )
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue  # the type check names it
        low, high = limit
        name = key.split(".")[-1]
        if isinstance(value, float) and not math.isfinite(value):
            text = "NaN" if math.isnan(value) else f"{'-' * (value < 0)}Infinity"  # as JSON
            errors.append(_custom(_loc(key), f"{name} must be a finite number, got {text}", text))
        elif not low <= value <= high:
            errors.append(
                _custom(
                    _loc(key),
                    f"{name} must be in [{_num(low)}, {_num(high)}], got {_num(value)}",
                    value,
                )
            )
    return errors


def _num(value: float) -> str:
    """1e-08 -> '1e-08', 4096 -> '4096', 1e18 -> '1e+18'."""
    if isinstance(value, int) or (value.is_integer() and abs(value) < 1e9):
        return str(int(value)) if abs(value) < 1e15 else f"{value:.3g}"
    return f"{value:g}"


def backbone_size(backbone: str) -> tuple[int, int | None] | None:
    """(hidden size, max positions) of a backbone that loads, else None."""
    try:
        if backbone.startswith("tiny-"):
            from propetl.tiny import tiny_config

            config: Any = tiny_config(backbone[5:])
        else:
            from transformers import AutoConfig

            from propetl.backbones import hub_kwargs, load_kwargs, resolve_path

            path = resolve_path(backbone)
            config = AutoConfig.from_pretrained(path, **hub_kwargs(path), **load_kwargs(backbone))
    except Exception:
        return None
    hidden = (
        getattr(config, "hidden_size", None)
        or getattr(config, "d_model", None)
        or getattr(config, "dim", None)
    )
    positions = getattr(config, "max_position_embeddings", None)
    return (int(hidden), int(positions) if positions else None) if hidden else None


def _sized(
    config: TrainConfig, size: tuple[int, int | None] | None = None
) -> list[InitErrorDetails]:
    """PETL sizes against the backbone: a bottleneck up to 8 x its hidden size, a LoRA rank
    up to its hidden size, a prefix up to its positions (`size`: `backbone_size`, when the
    caller has read it already)."""
    size = size or backbone_size(config.backbone)
    if size is None:
        return []
    hidden, positions = size
    p = config.propetl
    bounds = [
        ("bottleneck", p.bottleneck, 8 * hidden, f"8 x the hidden size {hidden}"),
        ("lora_r", p.lora_r, hidden, f"the hidden size {hidden}"),
    ]
    if positions:
        bounds.append(
            ("prefix_len", p.prefix_len, positions, f"the backbone's {positions} positions")
        )
    return [
        _custom(
            ("propetl", name),
            f"{name} must be at most {high} ({why} of {config.backbone}), got {value}",
            value,
        )
        for name, value, high, why in bounds
        if value > high
    ]


def is_server_path(text: str) -> bool:
    """True when `text` names a server path rather than a catalog, upload or hub name, told
    by the text alone (whether such a file exists never changes an answer): it starts with
    `/`, `.`, `~` or `\\`, or holds a `\\` or a `..` part. A hub id never does."""
    return text.startswith(("/", ".", "~", "\\")) or "\\" in text or ".." in text.split("/")


def check_named_backbone(backbone: str, paths: bool = False) -> None:
    """`check_backbone` for a name as the caller gave it. Without `paths` (the API and the
    dashboard; a path was allowed by `backbone_problem`), a name that is not a path is a hub
    id only: a folder of that name in the server's working directory changes nothing."""
    from propetl.backbones import check_backbone

    check_backbone(backbone, folders=paths or is_server_path(backbone))


def backbone_problem(backbone: str, paths: bool) -> str | None:
    """Why an API / dashboard job may not name this backbone folder (None: it may)."""
    if paths or not is_server_path(backbone):
        return None
    folder = Path(backbone).expanduser().resolve()
    allowed = get_settings().allowed_backbone_dirs
    if any(folder != root and folder.is_relative_to(root) for root in allowed):
        return None
    return (
        "backbone folders on the server are allowed only under the folders listed in "
        "PROPETL_BACKBONE_DIRS"
        + (f" ({', '.join(map(str, allowed))})" if allowed else " (none are)")
        + "; name a known backbone or a hub model instead"
    )


def _needs_generative(i: int, task: str) -> InitErrorDetails:
    return _custom(
        ("tasks", i),
        f"{task} is a text-to-text task: it needs a generative "
        "backbone (T5 or Llama family, e.g. smollm2-135m)",
        task,
    )


def backbone_problems(
    config: TrainConfig, size: tuple[int, int | None] | None = None
) -> list[InitErrorDetails]:
    """What depends on the backbone: the PETL sizes (`_sized`) and catalog text-to-text
    tasks. For a job adding tasks onto a prototype, checked once its backbone applies."""
    from propetl.backbones import is_generative
    from propetl.data import get_task_info

    errors = _sized(config, size)
    for i, task in enumerate(config.tasks):
        if uploads.is_data_file(task):
            continue
        try:
            generative = get_task_info(task).generative
        except ValueError:  # not a catalog task: named by `check_resolvable`
            continue
        if generative and not is_generative(config.backbone):
            errors.append(_needs_generative(i, task))
    return errors


def config_invalid(problems: list[InitErrorDetails]) -> ValidationError:
    """A job spec's error for problems located in its config."""
    return ValidationError.from_exception_data(
        "JobSpec", [{**e, "loc": ("config", *e["loc"])} for e in problems]
    )


def names_tasks(data: Any) -> bool:
    """Whether a job spec as written names its tasks (flat, or under `config:`)."""
    if not isinstance(data, dict):
        return False
    config = data.get("config")
    return (
        isinstance(config, TrainConfig)
        or bool(data.get("tasks"))
        or (isinstance(config, dict) and bool(config.get("tasks")))
    )


def no_tasks_error() -> ValidationError:
    """A submitted job spec that names no task: a job has no default tasks (an empty spec
    would otherwise train the catalog's first task)."""
    return config_invalid(
        [
            _custom(
                ("tasks",),
                "name at least one task (a catalog name or a "
                "data file); a job spec has no default tasks",
                [],
            )
        ]
    )


def check_resolvable(
    config: TrainConfig, *, owner: str | None = None, paths: bool = False, backbone: bool = True
) -> list[InitErrorDetails]:
    """Errors for a backbone that cannot load or tasks the catalog does not know.

    Without `paths`, a data-file task must be an upload name (checked in `owner`'s uploads
    when an owner is given) and a backbone folder must be allowed by the settings. Without
    `backbone`, only the tasks are looked up (the job's backbone is not known yet: a
    prototype's, `backbone_problems` checks it then)."""
    errors: list[InitErrorDetails] = []
    from propetl.backbones import BackboneError, is_generative

    refused = backbone_problem(config.backbone, paths)
    try:
        if refused:
            raise BackboneError(refused)
        if backbone:
            check_named_backbone(config.backbone, paths)
    except BackboneError as err:
        errors.append(_custom(("backbone",), str(err), config.backbone))
    else:
        errors += _sized(config) if backbone else []
    from propetl.data import get_task_info, validate_user_file

    for i, task in enumerate(config.tasks):
        if not paths:
            if uploads.is_upload_name(task):
                if owner is None:
                    continue  # the caller is not known yet: checked again when submitted
                try:
                    upload = uploads.resolve(owner, task)
                except uploads.UploadNotFound as err:
                    errors.append(_custom(("tasks", i), str(err), task))
                    continue
                problems = validate_user_file(upload)
                if problems:
                    errors.append(_custom(("tasks", i), f"{task}: " + "; ".join(problems), task))
                continue
            if uploads.is_data_file(task) or is_server_path(task):
                errors.append(
                    _custom(
                        ("tasks", i),
                        f"{task!r}: name a task from the catalog, "
                        "or one of your uploads by its name (e.g. reviews.csv); "
                        "server paths are not accepted",
                        task,
                    )
                )
                continue
        path = Path(task).expanduser()
        if paths and owner and uploads.is_upload_name(task) and not path.exists():
            with contextlib.suppress(uploads.UploadNotFound):  # the owner's upload
                path = uploads.resolve(owner, task)
        if paths and (path.suffix.lower() in DATA_SUFFIXES or path.exists()):
            if not path.is_file():
                errors.append(_custom(("tasks", i), f"no data file at {task!r}", task))
            else:
                problems = validate_user_file(path)
                if problems:
                    errors.append(_custom(("tasks", i), f"{task}: " + "; ".join(problems), task))
            continue
        try:
            info = get_task_info(task)
        except ValueError as err:  # UnknownTaskError
            errors.append(_custom(("tasks", i), str(err), task))
            continue
        if info.generative and backbone and not errors and not is_generative(config.backbone):
            errors.append(_needs_generative(i, task))
    return errors


def _resolvable(config: TrainConfig, info: ValidationInfo) -> list[InitErrorDetails]:
    context = info.context or {}
    owner = context.get("owner")
    if owner is None and context.get("paths"):  # a trusted caller names the owner
        owner = info.data.get("owner")
    # onto a prototype: its backbone replaces this one (`app.prototype_tasks.rebase_spec`)
    onto = bool(info.data.get("base_prototype"))
    return check_resolvable(
        config, owner=owner, paths=bool(context.get("paths")), backbone=not onto
    )


def _name_problems(value: Any, info: ValidationInfo) -> list[InitErrorDetails]:
    """The backbone and task look-ups of a config whose other fields failed, so that one reply
    names every problem (nothing to add when the names themselves are of the wrong type)."""
    if not (info.context or {}).get("resolve", True) or not isinstance(value, dict):
        return []
    try:
        names = TrainConfig.from_dict({k: value[k] for k in ("backbone", "tasks") if k in value})
    except Exception:  # the type check already names them
        return []
    return [e for e in _resolvable(names, info) if e["loc"][0] in ("backbone", "tasks")]


def _merged(*groups: list[InitErrorDetails]) -> list[InitErrorDetails]:
    """One problem per field: the first group's that names it."""
    seen: set[tuple[Any, ...]] = set()
    out = []
    for error in (e for group in groups for e in group):
        if tuple(error["loc"]) not in seen:
            seen.add(tuple(error["loc"]))
            out.append(error)
    return out


class JobSpec(BaseModel):
    """A training job as submitted: who, where, and the engine's `TrainConfig`.

    Validation context `{"resolve": False}` skips the backbone / task look-ups (a worker
    re-reading a stored spec does not need them again).
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=False)

    name: str = Field("", max_length=200, description="a label shown in the dashboard")
    owner: str = Field("local", min_length=1, max_length=100)
    queue: str | None = Field(None, description="Celery queue (default: settings.default_queue)")
    # before `config`, whose backbone checks wait for the prototype's backbone when given
    base_prototype: str | None = Field(
        None,
        min_length=1,
        max_length=36,
        description="uid of a registered prototype to add the tasks onto: its backbone and "
        "method fields are used, only the new tasks' masks and heads train",
    )
    config: TrainConfig = Field(default_factory=TrainConfig)
    #: Not public input (hidden from the schema): see `_label_only_from_the_label_route`.
    label: SkipJsonSchema[LabelSpec | None] = Field(
        None,
        description="a batch-prediction job: label a stored upload with a prototype "
        "(app/labels.py) instead of training",
    )
    replace_tasks: list[str] = Field(
        default_factory=list,
        max_length=64,
        description="with base_prototype: tasks already on it to retrain (masks and head)",
    )
    #: The method fields the submitter gave (checked against a base prototype's).
    _given: dict[str, Any] = PrivateAttr(default_factory=dict)
    _tasks_given: bool = PrivateAttr(default=True)

    @model_validator(mode="wrap")
    @classmethod
    def _remember_given(cls, data: Any, handler: Any) -> Any:
        spec = handler(data)
        if isinstance(data, dict):
            spec._given = given_method_fields(data)
            spec._tasks_given = names_tasks(data)
        return spec

    @property
    def given_method(self) -> dict[str, Any]:
        return dict(self._given)

    @property
    def tasks_given(self) -> bool:
        """Whether the spec as written named its tasks (not the config's default)."""
        return self._tasks_given

    def __eq__(self, other: object) -> bool:  # what the fields say, not how they were given
        if not isinstance(other, JobSpec):
            return NotImplemented
        return self.__dict__ == other.__dict__

    __hash__ = None  # type: ignore[assignment]

    @model_validator(mode="before")
    @classmethod
    def _nest_training_fields(cls, data: Any) -> Any:
        """Accept the training options at the top level too (flat YAML)."""
        if isinstance(data, dict):
            flat = {k: v for k, v in data.items() if k in _TRAIN_FIELDS}
            if flat:
                data = {k: v for k, v in data.items() if k not in _TRAIN_FIELDS}
                data["config"] = {**flat, **dict(data.get("config") or {})}
        return data

    @field_validator("label", mode="before")
    @classmethod
    def _label_only_from_the_label_route(cls, value: Any, info: ValidationInfo) -> Any:
        """A labelling job reads a stored file with a prototype, both checked to be the
        caller's by the label route only; a spec from anywhere else may not name them."""
        if value is not None and not (info.context or {}).get("labelling"):
            raise PydanticCustomError(
                "spec_error",
                "a job spec cannot carry 'label': files are labelled through "
                'POST /api/prototypes/<uid>/label or the Playground\'s "Label a file"',
            )
        return value

    @field_validator("queue")
    @classmethod
    def _check_queue(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and not _QUEUE.match(value):
            raise PydanticCustomError("spec_error", "use 1-100 letters, digits, '_', '-' or '.'")
        context = info.context or {}
        if value is not None and context.get("resolve", True) and not context.get("paths"):
            allowed = get_settings().allowed_queues
            if value not in allowed:
                raise PydanticCustomError(
                    "spec_error",
                    "no worker is known to listen on queue '{queue}'; use one "
                    "of {allowed} (the server lists its queues in PROPETL_QUEUES)",
                    {"queue": value, "allowed": ", ".join(allowed)},
                )
        return value

    @field_validator("config", mode="wrap")
    @classmethod
    def _check_config(cls, value: Any, handler: Any, info: ValidationInfo) -> TrainConfig:
        if isinstance(value, TrainConfig):
            value = value.to_dict()
        # every problem at once, one message per field: wrong types first, then the service's
        # bounds (`LIMITS`: tighter than the engine's, and naming both ends), then the engine's
        limits = type_problems(value, (info.context or {}).get("resolve", True)) + limit_problems(
            value
        )
        try:
            config: TrainConfig = handler(value)
        except ValidationError as err:
            found = [d for e in err.errors() for d in _located(e)]
            types = [e for e in found if isinstance(e["type"], str)]  # pydantic's own
            errors = _merged(
                types, limits, found, _engine_problems(value), _name_problems(value, info)
            )
            raise ValidationError.from_exception_data("JobSpec.config", errors) from None
        if limits:
            errors = _merged(limits, _name_problems(value, info))
            raise ValidationError.from_exception_data("JobSpec.config", errors)
        if (info.context or {}).get("resolve", True):
            errors = _resolvable(config, info)
            if errors:
                raise ValidationError.from_exception_data("JobSpec.config", errors)
        return config

    # --- conversions --------------------------------------------------------------------

    def to_json_dict(self) -> dict[str, Any]:
        """The spec as plain JSON (what the registry stores)."""
        data = self.model_dump(exclude={"config"} | ({"label"} if self.label is None else set()))
        data["config"] = self.config.to_dict()
        return data

    @classmethod
    def from_stored(cls, data: dict[str, Any]) -> JobSpec:
        """A spec read back from the registry (already validated at submit)."""
        data = {k: v for k, v in data.items() if k != "sweep_id"}  # stored before sweeps
        return cls.model_validate(data, context={"resolve": False, "labelling": True})

    @classmethod
    def from_yaml(cls, path: str | Path, *, resolve: bool = True) -> JobSpec:
        """Read a spec from a YAML file (nested `config:` or flat training options)."""
        data = load_yaml(Path(path).read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a job spec is a mapping of options")
        return cls.model_validate(data, context={"resolve": resolve, "paths": True})


def describe_errors(err: ValidationError) -> str:
    """One line per problem: `config.lr: lr must be > 0, got -1.0`."""
    lines = []
    for e in err.errors(include_url=False):
        where = ".".join(str(p) for p in e["loc"]) or "spec"
        lines.append(f"{where}: {e['msg']}")
    return "\n".join(lines)

"""`JobSpec`: the one description of a job, shared by the CLI, UI, API and workers.

The training options are not re-declared: `config` is the engine's `TrainConfig` dataclass,
validated by pydantic field by field and then by `TrainConfig.validate()`, whose messages
become pydantic errors located at the field they name.
"""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml
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
from pydantic_core import InitErrorDetails, PydanticCustomError

from propetl.config import PropetlConfig, TrainConfig
from propetl.continual import given_method_fields

from .labels import LabelSpec

_TRAIN_FIELDS = frozenset(f.name for f in fields(TrainConfig))
_CONFIG_FIELDS = _TRAIN_FIELDS | {f.name for f in fields(PropetlConfig)}
#: Suffixes of a user's own data file given as a task.
DATA_SUFFIXES = (".csv", ".tsv", ".jsonl")
_QUEUE = re.compile(r"^[A-Za-z0-9_.\-]{1,100}$")


def _located(err: dict[str, Any]) -> InitErrorDetails:
    """Re-locate a `ConfigError` ("lr must be > 0") at the field its message names."""
    loc = tuple(err["loc"])
    if err["type"] != "value_error":
        return InitErrorDetails(type=err["type"], loc=loc, input=err["input"],
                                ctx=err.get("ctx", {}))
    message = str(err["ctx"]["error"])
    first = message.split(" ", 1)[0].rstrip(":")
    if first in _CONFIG_FIELDS:
        loc = (*loc, first)
    return InitErrorDetails(type=PydanticCustomError("config_error", "{message}", {"message": message}),
                            loc=loc, input=err["input"])


def _custom(loc: tuple[str | int, ...], message: str, value: Any) -> InitErrorDetails:
    return InitErrorDetails(type=PydanticCustomError("spec_error", "{message}", {"message": message}),
                            loc=loc, input=value)


def check_resolvable(config: TrainConfig) -> list[InitErrorDetails]:
    """Errors for a backbone that cannot load or tasks the catalog does not know."""
    errors: list[InitErrorDetails] = []
    from propetl.backbones import BackboneError, check_backbone, is_generative

    try:
        check_backbone(config.backbone)
    except BackboneError as err:
        errors.append(_custom(("backbone",), str(err), config.backbone))
    from propetl.data import get_task_info, validate_user_file

    for i, task in enumerate(config.tasks):
        path = Path(task).expanduser()
        if path.suffix.lower() in DATA_SUFFIXES or path.exists():
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
        if info.generative and not errors and not is_generative(config.backbone):
            errors.append(_custom(("tasks", i), f"{task} is a text-to-text task: it needs a "
                                  "generative backbone (T5 or Llama family, e.g. smollm2-135m)",
                                  task))
    return errors


class JobSpec(BaseModel):
    """A training job as submitted: who, where, and the engine's `TrainConfig`.

    Validation context `{"resolve": False}` skips the backbone / task look-ups (a worker
    re-reading a stored spec does not need them again).
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=False)

    name: str = Field("", max_length=200, description="a label shown in the dashboard")
    owner: str = Field("local", min_length=1, max_length=100)
    queue: str | None = Field(None, description="Celery queue (default: settings.default_queue)")
    config: TrainConfig = Field(default_factory=TrainConfig)
    label: LabelSpec | None = Field(
        None, description="a batch-prediction job: label a stored upload with a prototype "
                          "(app/labels.py) instead of training")
    base_prototype: str | None = Field(
        None, min_length=1, max_length=36,
        description="uid of a registered prototype to add the tasks onto: its backbone and "
                    "method fields are used, only the new tasks' masks and heads train")
    replace_tasks: list[str] = Field(
        default_factory=list, max_length=64,
        description="with base_prototype: tasks already on it to retrain (masks and head)")
    #: The method fields the submitter gave (checked against a base prototype's).
    _given: dict[str, Any] = PrivateAttr(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _remember_given(cls, data: Any, handler: Any) -> Any:
        spec = handler(data)
        if isinstance(data, dict):
            spec._given = given_method_fields(data)
        return spec

    @property
    def given_method(self) -> dict[str, Any]:
        return dict(self._given)

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

    @field_validator("queue")
    @classmethod
    def _check_queue(cls, value: str | None) -> str | None:
        if value is not None and not _QUEUE.match(value):
            raise PydanticCustomError("spec_error", "use 1-100 letters, digits, '_', '-' or '.'")
        return value

    @field_validator("config", mode="wrap")
    @classmethod
    def _check_config(cls, value: Any, handler: Any, info: ValidationInfo) -> TrainConfig:
        if isinstance(value, TrainConfig):
            value = value.to_dict()
        try:
            config: TrainConfig = handler(value)
        except ValidationError as err:
            raise ValidationError.from_exception_data(
                "JobSpec.config", [_located(e) for e in err.errors()]) from None
        if (info.context or {}).get("resolve", True):
            errors = check_resolvable(config)
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
        return cls.model_validate(data, context={"resolve": False})

    @classmethod
    def from_yaml(cls, path: str | Path, *, resolve: bool = True) -> JobSpec:
        """Read a spec from a YAML file (nested `config:` or flat training options)."""
        data = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a job spec is a mapping of options")
        return cls.model_validate(data, context={"resolve": resolve})


def describe_errors(err: ValidationError) -> str:
    """One line per problem: `config.lr: lr must be > 0, got -1.0`."""
    lines = []
    for e in err.errors(include_url=False):
        where = ".".join(str(p) for p in e["loc"]) or "spec"
        lines.append(f"{where}: {e['msg']}")
    return "\n".join(lines)

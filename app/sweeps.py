"""`SweepSpec`: one base job spec and a grid of values for some of its fields.

A grid maps a field path of the job's `TrainConfig` (`lr`, `max_steps`, `propetl.keep`; the
method's options may drop the `propetl.` prefix: `keep`, `petl`) to the values it takes. The
sweep is the product of the lists; every combination is validated as a `JobSpec` before
anything is written, and the registry creates all its jobs in one transaction.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import fields
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

from .specs import JobSpec, backbone_problems, backbone_size, config_invalid, load_yaml

#: The most jobs one sweep may create.
MAX_SWEEP_JOBS = 64
TRAIN_FIELDS = tuple(f.name for f in fields(TrainConfig) if f.name != "propetl")
METHOD_FIELDS = tuple(f.name for f in fields(PropetlConfig) if f.name != "extra")
#: Paths whose values change which backbone or tasks load (checked again per job).
_RESOLVED = ("backbone", "tasks")


def field_path(key: str) -> str:
    """The canonical path of a swept field: 'keep' -> 'propetl.keep', 'config.lr' -> 'lr'."""
    key = key.strip()
    key = key.removeprefix("config.")
    if key in TRAIN_FIELDS:
        return key
    name = key.removeprefix("propetl.")
    if name in METHOD_FIELDS:
        return f"propetl.{name}"
    raise ValueError(
        f"unknown field {key!r}: sweep a training option "
        f"({', '.join(TRAIN_FIELDS)}) or a method option "
        f"({', '.join(METHOD_FIELDS)})"
    )


def parse_values(text: str) -> list[Any]:
    """'0.05, 0.1, adapter, true' -> [0.05, 0.1, 'adapter', True] (each item read as YAML)."""
    out = []
    for item in text.split(","):
        item = item.strip()
        if item:
            try:
                out.append(load_yaml(item))
            except yaml.YAMLError:
                out.append(item)
    return out


def parse_grid_option(text: str) -> tuple[str, list[Any]]:
    """A `--grid` option: 'keep=0.05,0.1,0.3' -> ('keep', [0.05, 0.1, 0.3])."""
    key, sep, values = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"{text!r}: write a grid option as FIELD=V1,V2,... (e.g. keep=0.1,0.5)")
    return key.strip(), parse_values(values)


def value_at(config: dict[str, Any], path: str) -> Any:
    """The value of `path` ('propetl.keep') in a nested config dict (None when absent)."""
    value: Any = config
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _set(config: dict[str, Any], path: str, value: Any) -> None:
    *parents, name = path.split(".")
    for parent in parents:
        config = config.setdefault(parent, {})
    config[name] = [value] if name == "tasks" and isinstance(value, str) else value


def _error(loc: tuple[str | int, ...], message: str, value: Any) -> InitErrorDetails:
    return InitErrorDetails(
        type=PydanticCustomError("sweep_error", "{message}", {"message": message}),
        loc=loc,
        input=value,
    )


def label(values: dict[str, Any]) -> str:
    """'keep=0.05 · petl=lora' for a combination (method paths without 'propetl.')."""
    return " · ".join(f"{path.removeprefix('propetl.')}={value}" for path, value in values.items())


class SweepSpec(BaseModel):
    """A grid of jobs over one base spec; `jobs()` gives the validated `JobSpec` of each."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("", max_length=200, description="a label for the sweep and its jobs")
    owner: str = Field("local", min_length=1, max_length=100)
    base: JobSpec = Field(description="the job spec every combination starts from")
    grid: dict[str, list[Any]] = Field(
        description="field path (lr, keep, propetl.petl, ...) -> the values it takes"
    )
    _jobs: list[JobSpec] = PrivateAttr(default_factory=list)
    _combos: list[dict[str, Any]] = PrivateAttr(default_factory=list)

    @field_validator("grid")
    @classmethod
    def _check_grid(cls, grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
        if not grid:
            raise PydanticCustomError("sweep_error", "give at least one field to sweep")
        out: dict[str, list[Any]] = {}
        for key, values in grid.items():
            try:
                path = field_path(key)
            except ValueError as err:
                raise PydanticCustomError(
                    "sweep_error", "{message}", {"message": str(err)}
                ) from None
            if path in out:
                raise PydanticCustomError("sweep_error", "{path} is given twice", {"path": path})
            if not values:
                raise PydanticCustomError(
                    "sweep_error", "{path}: give at least one value", {"path": path}
                )
            seen = [yaml.safe_dump(v) for v in values]
            if len(set(seen)) != len(seen):
                raise PydanticCustomError(
                    "sweep_error", "{path}: a value is repeated", {"path": path}
                )
            out[path] = list(values)
        size = math.prod(len(v) for v in out.values())
        if size > MAX_SWEEP_JOBS:
            raise PydanticCustomError(
                "sweep_error",
                "{size} combinations; a sweep may have at most {cap} jobs",
                {"size": size, "cap": MAX_SWEEP_JOBS},
            )
        return out

    @model_validator(mode="after")
    def _expand(self, info: ValidationInfo) -> SweepSpec:
        """Validate every combination as a job spec; all problems are reported at once."""
        base = self.base.to_json_dict()
        resolve = any(p in _RESOLVED for p in self.grid)
        # the base's backbone, looked up once: each job's PETL sizes are checked against it
        size = None if resolve else backbone_size(self.base.config.backbone)
        errors: dict[str, InitErrorDetails] = {}  # one entry per problem, the first combination
        jobs, combos = [], []
        for combo in itertools.product(*self.grid.values()):
            values = dict(zip(self.grid, combo, strict=True))
            data = {**base, "owner": self.owner, "config": dict(base["config"])}
            data["config"]["propetl"] = dict(data["config"].get("propetl") or {})
            for path, value in values.items():
                _set(data["config"], path, value)
            data["name"] = f"{self.name or 'sweep'} · {label(values)}"[:200]
            try:
                job = JobSpec.model_validate(
                    data, context={**(info.context or {}), "resolve": resolve}
                )
                sized = backbone_problems(job.config, size) if size else []
                if sized:
                    raise config_invalid(sized)
                jobs.append(job)
                combos.append(values)
            except ValidationError as err:
                for e in err.errors(include_url=False):
                    problem = f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                    errors.setdefault(
                        problem,
                        _error(("grid",), f"{problem} (in the job {label(values)})", list(combo)),
                    )
        if errors:
            raise ValidationError.from_exception_data("SweepSpec", list(errors.values()))
        self._jobs, self._combos = jobs, combos
        return self

    def jobs(self) -> list[JobSpec]:
        """The job spec of each combination, in grid order (last field varies fastest)."""
        return list(self._jobs)

    def combinations(self) -> list[dict[str, Any]]:
        return [dict(c) for c in self._combos]

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "owner": self.owner,
            "base": self.base.to_json_dict(),
            "grid": self.grid,
        }

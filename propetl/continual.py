"""Growing a saved prototype: new tasks trained over a frozen prototype, old files untouched.

A prototype's artifacts are append-only. Adding tasks loads the model folder, freezes the
prototype and every task already on it (masks and heads), trains only the new tasks' mask
scores and heads, and writes only the new tasks' folders: the prototype file and every old
task's files stay byte-identical (sha256), so old tasks answer exactly as before.

    base = read_base("runs/a/model")
    config = onto_config(base, {"tasks": ["rotten_tomatoes"], "max_steps": 200})
    result = propetl.training.train(config, "runs/b", onto=base.directory)
    # runs/b/model: the old files copied byte for byte, plus tasks/rotten_tomatoes/

The method fields (backbone, PETL kind, shapes, keep, sharing, mask init, seed...) come from
the prototype; a value given that differs from the prototype's is refused by name.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .checkpoint import (
    CONFIG_FILE,
    PROTOTYPE_FILE,
    TASKS_DIR,
    CheckpointError,
    _task_folder,
    load_model,
    manifest_config,
    model_manifest,
    read_manifest,
    save_task,
    saved_tasks,
)
from .config import DEFAULT_MASK_LR, ConfigError, PropetlConfig, TaskHeadSpec, TrainConfig


def added_task_mask_lr(petl: str, given: float | None = None) -> float:
    """The mask scores' learning rate of a task added onto a prototype of PETL kind `petl`:
    the one `given`, else the default of the prototype's kind (not of the kind a submitted
    config named)."""
    return given if given is not None else DEFAULT_MASK_LR[petl]


#: The fields of the ProPETL config that a prototype fixes for every task added onto it.
METHOD_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(PropetlConfig))


class OntoError(ConfigError):
    """Tasks cannot be added onto this prototype as asked (conflicting method, name taken)."""


@dataclass(frozen=True)
class Base:
    """A saved prototype that tasks are added onto."""

    directory: Path
    manifest: dict[str, Any]
    config: PropetlConfig
    backbone: str
    tasks: list[str]


def read_base(directory: str | Path) -> Base:
    """The prototype saved in `directory` (a model folder): its config, backbone and tasks."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    config = manifest_config(manifest, directory)
    backbone = manifest.get("backbone")
    if not isinstance(backbone, str) or not backbone:
        raise CheckpointError(f"{directory / CONFIG_FILE}: no backbone recorded")
    return Base(directory, manifest, config, backbone, saved_tasks(directory))


def _same(given: Any, theirs: Any) -> bool:
    if isinstance(given, (list, tuple)) and isinstance(theirs, (list, tuple)):
        return list(given) == list(theirs)
    if (
        isinstance(given, (int, float))
        and isinstance(theirs, (int, float))
        and not isinstance(given, bool)
    ):
        return float(given) == float(theirs)
    return given == theirs


def method_conflicts(base: Base | dict[str, Any], given: dict[str, Any]) -> list[str]:
    """Method fields given (as the user wrote them: `backbone` and a `propetl` mapping) that
    differ from the prototype's, one "field: given X, the prototype has Y" line each.

    `base` is a `Base` or a mapping {"backbone": name, "config": PropetlConfig dict}.
    Values left out or None are not conflicts: they are taken from the prototype.
    """
    if isinstance(base, Base):
        backbone, theirs = base.backbone, base.config.to_dict()
    else:
        backbone, theirs = base.get("backbone"), dict(base.get("config") or {})
    out = []
    if given.get("backbone") not in (None, "") and given["backbone"] != backbone:
        out.append(f"backbone: given {given['backbone']!r}, the prototype has {backbone!r}")
    propetl = given.get("propetl") or {}
    if isinstance(propetl, PropetlConfig):
        propetl = propetl.to_dict()
    for key, value in propetl.items():
        if value is None or key not in theirs:
            continue
        if not _same(value, theirs[key]):
            out.append(f"propetl.{key}: given {value!r}, the prototype has {theirs[key]!r}")
    return out


def conflict_message(conflicts: Sequence[str], where: str = "the prototype") -> str:
    return (
        f"adding tasks onto {where}: these method fields come from the prototype and cannot "
        "be changed (leave them out): " + "; ".join(conflicts)
    )


def onto_config(base: Base, given: dict[str, Any]) -> TrainConfig:
    """The job config of adding tasks onto `base`: the training options `given` (a mapping of
    `TrainConfig` fields), with the backbone and ProPETL config of the prototype.

    Raises `OntoError` naming every method field given with another value."""
    conflicts = method_conflicts(base, given)
    if conflicts:
        raise OntoError(conflict_message(conflicts, str(base.directory)))
    data = {k: v for k, v in given.items() if k not in ("backbone", "propetl")}
    data["mask_lr"] = added_task_mask_lr(base.config.petl, data.get("mask_lr"))
    return TrainConfig.from_dict(
        {
            **data,
            "backbone": base.backbone,
            "propetl": PropetlConfig.from_dict(base.config.to_dict()),
        }
    )


def check_task_names(
    existing: Sequence[str],
    names: Sequence[str],
    replace: Sequence[str] = (),
    option: str = "replace",
) -> None:
    """New task names must be new on the prototype, unless listed in `replace` (which then
    retrains that task's masks and head). `option`: how the caller's user names `replace`
    (the CLI's `--replace TASK`, a job spec's `replace_tasks`, ...)."""
    taken = [n for n in names if n in existing and n not in replace]
    if taken:
        raise OntoError(
            f"task(s) {', '.join(taken)} already on the prototype (it has: "
            f"{', '.join(existing)}); use new names, or retrain a task explicitly "
            f"with {option}"
        )
    unknown = [r for r in replace if r not in existing]
    if unknown:
        raise OntoError(
            f"cannot replace {', '.join(unknown)}: not a task of the prototype "
            f"(it has: {', '.join(existing) or 'none'})"
        )
    unlisted = [r for r in replace if r not in names]
    if unlisted:
        raise OntoError(f"replace {', '.join(unlisted)}: list the task among the tasks to train")


def check_same_method(base: Base, config: TrainConfig) -> None:
    """Refuse a job config whose backbone or ProPETL config is not the prototype's."""
    conflicts = method_conflicts(
        base, {"backbone": config.backbone, "propetl": config.propetl.to_dict()}
    )
    if conflicts:
        raise OntoError(conflict_message(conflicts, str(base.directory)))


# ------------------------------------------------------------------ the model


def build_onto_model(
    base: Base, backbone: Any, specs: Sequence[TaskHeadSpec], replace: Sequence[str] = ()
):
    """The prototype with its old tasks loaded frozen (fixed masks, frozen heads) and the new
    tasks added trainable (their scores start as `mask_init` says)."""
    keep = [t for t in base.tasks if t not in replace]
    model = load_model(base.directory, backbone=backbone, tasks=keep)
    model.backbone_name = base.backbone
    for param in model.parameters():
        param.requires_grad_(False)
    for spec in specs:
        model.add_task(spec, trainable=True)
    return model


def added_at() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def save_onto(model, base: Base, new_tasks: Sequence[str], out: Path) -> Path:
    """Write the grown model folder `out`: the prototype file and every kept old task's folder
    copied byte for byte from `base`, the new tasks' folders, and a manifest listing all tasks.
    Written in a temporary folder, then renamed: a failure leaves no half-written folder."""
    out = Path(out)
    staging = out.parent / f".{out.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        staging.mkdir(parents=True)
        manifest = model_manifest(model)
        (staging / CONFIG_FILE).write_text(json.dumps(manifest, indent=2))
        shutil.copyfile(base.directory / PROTOTYPE_FILE, staging / PROTOTYPE_FILE)
        for task in model.task_names:
            if task in new_tasks:
                continue
            shutil.copytree(_task_folder(base.directory, task), staging / TASKS_DIR / task)
        when = added_at()
        for task in new_tasks:
            save_task(model, task, staging, extra={"added_at": when})
        if out.exists():
            shutil.rmtree(out)
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


# ------------------------------------------------------------------ files


def file_hashes(directory: str | Path, skip: Iterable[str] = ()) -> dict[str, str]:
    """sha256 of every file under `directory`, by relative path (`skip`: relative paths)."""
    directory = Path(directory)
    skipped = set(skip)
    out = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        rel = path.relative_to(directory).as_posix()
        if rel in skipped:
            continue
        out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def prototype_hashes(directory: str | Path, tasks: Iterable[str] | None = None) -> dict[str, str]:
    """sha256 of the prototype file and of each file of the given (default: all) tasks."""
    directory = Path(directory)
    names = list(tasks) if tasks is not None else saved_tasks(directory)
    out = {PROTOTYPE_FILE: hashlib.sha256((directory / PROTOTYPE_FILE).read_bytes()).hexdigest()}
    for task in names:
        for rel, digest in file_hashes(directory / TASKS_DIR / task).items():
            out[f"{TASKS_DIR}/{task}/{rel}"] = digest
    return out


def changed_files(before: dict[str, str], after_dir: str | Path) -> list[str]:
    """Files of `before` (relative path -> sha256) missing or different under `after_dir`."""
    after_dir = Path(after_dir)
    out = []
    for rel, digest in before.items():
        path = after_dir / rel
        if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            out.append(rel)
    return out


@dataclass
class TaskPlacement:
    """Task folders placed into a prototype folder by `add_task_folders`: `commit()` once the
    registry knows them (removes swapped-out folders), or `rollback()` (removes the placed
    folders, puts swapped-out ones back)."""

    placed: list[Path]
    retired: list[tuple[Path, Path]]  # (swapped-out folder, where it was)

    def commit(self) -> None:
        for old, _ in self.retired:
            shutil.rmtree(old, ignore_errors=True)
        self.retired = []

    def rollback(self) -> None:
        for path in self.placed:
            shutil.rmtree(path, ignore_errors=True)
        for old, final in self.retired:
            if old.exists() and not final.exists():
                os.rename(old, final)
        self.placed, self.retired = [], []


def add_task_folders(
    source: str | Path, tasks: Sequence[str], target: str | Path, replace: Sequence[str] = ()
) -> TaskPlacement:
    """Copy the folders of `tasks` from model folder `source` into the prototype folder
    `target`, touching nothing else there.

    Each folder is copied to a hidden temporary name, then renamed into place, so a reader
    never sees half a task. A task folder already in `target` is an error unless the task is
    in `replace` (its old folder is then swapped out, and removed by `commit()`). On any
    failure every folder this call placed is removed and swapped-out folders are put back.
    """
    source, target = Path(source), Path(target)
    root = target / TASKS_DIR
    token = uuid.uuid4().hex[:12]
    staged: dict[str, Path] = {}
    placement = TaskPlacement([], [])
    try:
        if not (target / PROTOTYPE_FILE).is_file():
            raise CheckpointError(f"{target} holds no prototype ({PROTOTYPE_FILE} missing)")
        root.mkdir(parents=True, exist_ok=True)
        for task in tasks:
            final = _task_folder(target, task)
            if final.exists() and task not in replace:
                raise CheckpointError(
                    f"task {task!r} is already in {target}; adding tasks "
                    "never overwrites one (replace it explicitly)"
                )
            staged[task] = root / f".tmp-{task}-{token}"
            shutil.copytree(_task_folder(source, task), staged[task])
        for task, tmp in staged.items():
            final = root / task
            if task in replace and final.exists():
                old = root / f".old-{task}-{token}"
                os.rename(final, old)
                placement.retired.append((old, final))
            try:
                os.rename(tmp, final)
            except OSError as err:
                raise CheckpointError(
                    f"task {task!r} appeared in {target} meanwhile (another "
                    f"job added it): {err.strerror or err}"
                ) from err
            placement.placed.append(final)
    except BaseException:
        placement.rollback()
        for tmp in staged.values():
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    return placement


def given_method_fields(data: Any) -> dict[str, Any]:
    """The method fields a job description gives explicitly: `backbone`, `mask_lr` and the
    `propetl` mapping, from a flat or nested (`config:`) mapping as a user wrote it."""
    if not isinstance(data, dict):
        return {}
    config = data.get("config")
    if isinstance(config, TrainConfig):
        config = config.to_dict()
    merged = {
        **{k: v for k, v in data.items() if k in ("backbone", "mask_lr", "propetl")},
        **(config if isinstance(config, dict) else {}),
    }
    out: dict[str, Any] = {
        k: merged[k] for k in ("backbone", "mask_lr") if merged.get(k) is not None
    }
    propetl = merged.get("propetl")
    if isinstance(propetl, PropetlConfig):
        propetl = propetl.to_dict()
    if isinstance(propetl, dict):
        out["propetl"] = dict(propetl)
    return out


def rebased_config(base: Base, config: TrainConfig, given: dict[str, Any]) -> TrainConfig:
    """`config` with the prototype's backbone and ProPETL config (after `method_conflicts`
    found none); the mask lr is the added-task one of the prototype's PETL kind unless it
    was given."""
    data = config.to_dict()
    data.update(
        backbone=base.backbone,
        propetl=base.config.to_dict(),
        mask_lr=added_task_mask_lr(base.config.petl, given.get("mask_lr")),
    )
    return TrainConfig.from_dict({**data, "propetl": PropetlConfig.from_dict(data["propetl"])})

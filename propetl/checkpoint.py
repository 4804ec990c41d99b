"""ProPETL model folders: safetensors and JSON only, one folder per task.

```
model/
  propetl_config.json         format, backbone name, ProPETL config, bank shapes
  prototype.safetensors       the shared fp32 prototype (+ shared layer masks, bit-packed)
  tasks/<task>/task.json      the task's labels
  tasks/<task>/masks.safetensors   its masks, 1 bit per entry (sharing 'none': its fp32 modules)
  tasks/<task>/head.safetensors    its head (fp32)
```
A task can be added, exported or deleted by adding, copying or deleting its folder.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file
from transformers import PreTrainedModel

from .banks import Prototype
from .config import ConfigError, PropetlConfig, TaskHeadSpec, saved_propetl_dict
from .masks import pack_bits, unpack_bits

FORMAT = "propetl"
FORMAT_VERSION = 1
CONFIG_FILE = "propetl_config.json"
PROTOTYPE_FILE = "prototype.safetensors"
TASKS_DIR = "tasks"


class CheckpointError(ValueError):
    """A model folder is missing, incomplete, tampered with or of another format."""


def _atomic_save(
    tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        # Always some metadata: safetensors writes an unreadable header for {} tensors + {} metadata.
        save_file(
            {k: v.contiguous() for k, v in tensors.items()},
            tmp,
            metadata={"format": "pt", **(metadata or {})},
        )
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _atomic_write_text(text: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def _regular_file(path: Path) -> None:
    """Refuse a missing file, or a link (it could point anywhere outside the model folder)."""
    if path.is_symlink():
        raise CheckpointError(f"{path} is a symbolic link; model files must be regular files")
    if not path.is_file():
        raise CheckpointError(f"{path} is missing")


def _task_folder(directory: Path, task: str) -> Path:
    """`directory/tasks/<task>`, refusing names that would lead elsewhere."""
    if not task or task in (".", "..") or "/" in task or "\\" in task or task.startswith("."):
        raise CheckpointError(f"invalid task name {task!r}")
    folder = directory / TASKS_DIR / task
    if folder.is_symlink():
        raise CheckpointError(f"{folder} is a symbolic link; task folders must be real folders")
    return folder


def _read_json(path: Path) -> dict:
    _regular_file(path)
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path} is not valid JSON: {err}") from err
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} must hold a JSON object")
    return data


def _read_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    _regular_file(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        return load_file(str(path)), metadata
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(
            f"{path} is not a readable safetensors file (truncated or tampered?): {err}"
        ) from err


# ------------------------------------------------------------------ save


def model_manifest(model) -> dict:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "backbone": model.backbone_name,
        "model_type": model.backbone.config.model_type,
        "num_layers": model.num_layers,
        "hidden_size": model.hidden_size,
        "config": model.config.to_dict(),
        "tasks": model.task_names,
        "banks": {
            name: {"masked": {k: list(v) for k, v in bank.masked.items()}}
            for name, bank in model.banks.items()
        },
    }


def save_model(model, directory: Path) -> None:
    """Write the config, the shared prototype and every task's folder."""
    directory.mkdir(parents=True, exist_ok=True)
    _atomic_write_text(json.dumps(model_manifest(model), indent=2), directory / CONFIG_FILE)
    tensors: dict[str, torch.Tensor] = {}
    metadata: dict[str, str] = {}
    for bank_name, bank in model.banks.items():
        for name, value in bank.stored_prototype().items():
            tensors[f"{bank_name}.{name}"] = value.float().cpu()
        if bank.layer_masks is not None:
            with torch.no_grad():
                for name, mask in bank.layer_masks().items():
                    key = f"layer_mask.{bank_name}.{name}"
                    tensors[key] = pack_bits(mask)
                    metadata[key] = json.dumps(list(mask.shape))
    _atomic_save(tensors, directory / PROTOTYPE_FILE, metadata)
    for task in model.task_names:
        save_task(model, task, directory)


def save_task(model, task: str, directory: Path, extra: dict | None = None) -> Path:
    """Write one task's folder (masks bit-packed, head in fp32); `extra` goes into task.json
    (a task added onto a saved prototype records when: `added_at`)."""
    model._check_task(task)
    folder = directory / TASKS_DIR / task
    spec = model.task_specs[task]
    masks: dict[str, torch.Tensor] = {}
    metadata: dict[str, str] = {}
    with torch.no_grad():
        for bank_name, bank in model.banks.items():
            if bank.sharing == "none":
                for name, value in bank.stored_task_tensors(task).items():
                    masks[f"{bank_name}.{name}"] = value.float().cpu()
                continue
            for name, mask in bank.tasks[task]().items():
                key = f"{bank_name}.{name}"
                masks[key] = pack_bits(mask)
                metadata[key] = json.dumps(list(mask.shape))
    _atomic_save(masks, folder / "masks.safetensors", metadata)
    head = {k: v.float().cpu() for k, v in model.heads[task].state_dict().items()}
    _atomic_save(head, folder / "head.safetensors")
    _atomic_write_text(
        json.dumps(
            {"task": spec.to_dict(), "keep": model.config.keep_ratio, **(extra or {})}, indent=2
        ),
        folder / "task.json",
    )
    return folder


def delete_task(directory: Path, task: str) -> None:
    folder = _task_folder(directory, task)
    if not folder.is_dir():
        raise CheckpointError(f"no task {task!r} in {directory}")
    shutil.rmtree(folder)


def saved_tasks(directory: Path) -> list[str]:
    """Task folders present, in the model's task order; tasks added later onto the prototype
    come after, in the order they were added (`added_at` in task.json), then by name."""
    root = directory / TASKS_DIR
    if not root.is_dir():
        return []
    present = {p.name for p in root.iterdir() if (p / "task.json").is_file()}
    try:
        order = json.loads((directory / CONFIG_FILE).read_text()).get("tasks") or []
        order = [t for t in order if isinstance(t, str)]
    except (OSError, ValueError, AttributeError, TypeError):
        order = []
    ordered = [t for t in order if t in present]
    return ordered + sorted(present - set(ordered), key=lambda t: (_added_at(root / t), t))


def _added_at(folder: Path) -> str:
    try:
        value = json.loads((folder / "task.json").read_text()).get("added_at")
    except (OSError, ValueError, AttributeError):
        return ""
    return value if isinstance(value, str) else ""


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def export_tasks(source: Path, tasks: Sequence[str], target: Path) -> Path:
    """Write the model folder `target` holding the prototype of `source` and only `tasks`
    (its manifest lists only them): a complete model that loads from its own folder.

    `target` may be missing or empty, or hold a model of the very same prototype (the same
    prototype file, by sha256): the tasks are then added to it (a task of the same name is
    replaced). Anything else is refused (`CheckpointError`) before anything is written,
    since another prototype's task folders would not fit this one."""
    source, target = Path(source), Path(target)
    read_manifest(source)
    manifest = json.loads((source / CONFIG_FILE).read_text())
    folders = {task: _task_folder(source, task) for task in tasks}
    missing = [t for t, folder in folders.items() if not (folder / "task.json").is_file()]
    if missing:
        raise CheckpointError(f"no task {', '.join(map(repr, missing))} in {source}")
    kept: list[str] = []
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        if not (target / PROTOTYPE_FILE).is_file() or not (target / CONFIG_FILE).is_file():
            raise CheckpointError(
                f"{target} is not empty and holds no model folder: export "
                "into a new or empty folder"
            )
        if _sha256(target / PROTOTYPE_FILE) != _sha256(source / PROTOTYPE_FILE):
            raise CheckpointError(
                f"{target} holds a model of another prototype: its task "
                "folders and these would not fit one prototype; export into "
                "a new or empty folder"
            )
        kept = [t for t in saved_tasks(target) if t not in folders]
    token = uuid.uuid4().hex[:8]
    target.mkdir(parents=True, exist_ok=True)
    if not kept and not (target / PROTOTYPE_FILE).is_file():
        shutil.copy2(source / PROTOTYPE_FILE, target / f".{PROTOTYPE_FILE}-{token}")
        os.replace(target / f".{PROTOTYPE_FILE}-{token}", target / PROTOTYPE_FILE)
    root = target / TASKS_DIR
    root.mkdir(exist_ok=True)
    for task, folder in folders.items():  # each folder copied aside, then renamed into place
        staged, old = root / f".tmp-{task}-{token}", root / f".old-{task}-{token}"
        shutil.copytree(folder, staged)
        if (root / task).exists():
            os.rename(root / task, old)
        os.rename(staged, root / task)
        shutil.rmtree(old, ignore_errors=True)
    manifest["tasks"] = [*kept, *folders]
    _atomic_write_text(json.dumps(manifest, indent=2), target / CONFIG_FILE)
    shutil.copystat(source / CONFIG_FILE, target / CONFIG_FILE)  # the same zip each time
    return target


# ------------------------------------------------------------------ load


def read_manifest(directory: Path) -> dict:
    if not directory.is_dir():
        raise CheckpointError(f"model folder {directory} does not exist")
    manifest = _read_json(directory / CONFIG_FILE)
    if manifest.get("format") != FORMAT:
        raise CheckpointError(
            f"{directory} is not a ProPETL model folder (format {manifest.get('format')!r})"
        )
    if manifest.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{directory}: unsupported format version {manifest.get('format_version')!r}"
        )
    if isinstance(manifest.get("config"), dict):  # saved before a field existed: as it was then
        manifest["config"] = saved_propetl_dict(manifest["config"])
    return manifest


def manifest_config(manifest: dict, directory: Path) -> PropetlConfig:
    """The ProPETL config a model folder was saved with. Folders saved before `mask_init`
    existed drew each task's scores on their own: they read as "per-task"."""
    try:
        data = dict(manifest["config"])
        data.setdefault("mask_init", "per-task")
        return PropetlConfig.from_dict(data)
    except (ConfigError, KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{directory / CONFIG_FILE}: bad config: {err}") from err


def load_model(
    directory: Path,
    backbone: PreTrainedModel | str | None = None,
    tasks: Iterable[str] | None = None,
):
    """Rebuild a ProPETL model for inference: backbone, prototype, then each task's folder."""
    from .backbones import BackboneError, load_backbone_model
    from .model import ProPETLModel

    manifest = read_manifest(directory)
    config = manifest_config(manifest, directory)
    if backbone is None or isinstance(backbone, str):
        name = backbone or manifest.get("backbone")
        if not name:
            raise CheckpointError(f"{directory}: no backbone recorded; pass one explicitly")
        try:
            backbone = load_backbone_model(str(name))
        except BackboneError as err:
            raise CheckpointError(f"{directory}: {err}") from err
        backbone_name = str(name)
    else:
        backbone_name = manifest.get("backbone") or ""
    model = ProPETLModel(backbone, config, backbone_name=backbone_name)
    if model.num_layers != manifest.get("num_layers") or model.hidden_size != manifest.get(
        "hidden_size"
    ):
        raise CheckpointError(
            f"{directory} was trained for {manifest.get('num_layers')} layers of "
            f"width {manifest.get('hidden_size')}, the backbone has "
            f"{model.num_layers} x {model.hidden_size}"
        )
    _load_prototype(model, directory)
    for task in list(tasks) if tasks is not None else saved_tasks(directory):
        load_task(model, directory, task)
    model.eval()
    return model


def _unpack(
    tensors: dict[str, torch.Tensor],
    metadata: dict[str, str],
    key: str,
    expected: tuple[int, ...],
    source: Path,
) -> torch.Tensor:
    """A saved mask as a binary tensor of shape `expected` (checked as `_packed` does)."""
    packed, shape = _packed(tensors, metadata, key, expected, source)
    try:
        return unpack_bits(packed, shape)
    except ValueError as err:
        raise CheckpointError(f"{source}: {err}") from err


def _packed(
    tensors: dict[str, torch.Tensor],
    metadata: dict[str, str],
    key: str,
    expected: tuple[int, ...],
    source: Path,
) -> tuple[torch.Tensor, tuple[int, ...]]:
    """A saved mask as its packed bytes and shape, after checking both against `expected`."""
    if key not in tensors or key not in metadata:
        raise CheckpointError(f"{source}: missing mask {key!r}")
    try:
        shape = tuple(json.loads(metadata[key]))
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"{source}: mask {key!r} has an unreadable shape") from err
    if shape != expected:
        raise CheckpointError(f"{source}: mask {key!r} has shape {shape}, expected {expected}")
    packed = tensors[key]
    size = (math.prod(shape) + 7) // 8
    if packed.dim() != 1 or packed.numel() != size or packed.dtype != torch.uint8:
        raise CheckpointError(
            f"{source}: mask {key!r} has {packed.numel()} bytes of "
            f"{packed.dtype}, expected {size} uint8 for shape {shape}"
        )
    return packed, expected


def _load_prototype(model, directory: Path) -> None:
    path = directory / PROTOTYPE_FILE
    tensors, metadata = _read_tensors(path)
    for bank_name, bank in model.banks.items():
        if bank.sharing == "none":
            continue
        expected = {n: tuple(v.shape) for n, v in bank.stored_prototype().items()}
        loaded = {}
        for name, shape in expected.items():
            value = tensors.get(f"{bank_name}.{name}")
            if value is None or tuple(value.shape) != shape:
                raise CheckpointError(
                    f"{path}: prototype tensor {bank_name}.{name} missing or not of shape {shape}"
                )
            loaded[name] = value
        bank.prototype = Prototype.from_tensors(loaded)
        if bank.layer_masks is not None:
            fixed = {
                name: _unpack(
                    tensors,
                    metadata,
                    f"layer_mask.{bank_name}.{name}",
                    (bank.num_layers, *shape),
                    path,
                )
                for name, shape in bank.masked.items()
            }
            bank.layer_masks.set_fixed(fixed)


def load_task(model, directory: Path, task: str) -> None:
    """Add one saved task (masks + head) to a loaded model."""
    folder = _task_folder(directory, task)
    if not folder.is_dir():
        raise CheckpointError(
            f"no task {task!r} in {directory} (have: {', '.join(saved_tasks(directory)) or 'none'})"
        )
    info = _read_json(folder / "task.json")
    try:
        spec = TaskHeadSpec.from_dict(info["task"])
    except (ConfigError, KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{folder / 'task.json'}: bad task description: {err}") from err
    if spec.name != task:
        raise CheckpointError(f"{folder}: folder name {task!r} does not match task {spec.name!r}")
    masks_path = folder / "masks.safetensors"
    tensors, metadata = _read_tensors(masks_path)
    head, _ = _read_tensors(folder / "head.safetensors")
    model.add_task(spec, trainable=False)
    try:
        for bank_name, bank in model.banks.items():
            if bank.sharing == "none":
                own = {}
                for name, value in bank.stored_task_tensors(task).items():
                    saved = tensors.get(f"{bank_name}.{name}")
                    if saved is None or saved.shape != value.shape:
                        raise CheckpointError(
                            f"{masks_path}: {bank_name}.{name} missing or "
                            f"not of shape {tuple(value.shape)}"
                        )
                    own[name] = saved
                bank.tasks[task] = Prototype.from_tensors(own)
                continue
            rows = 1 if bank.sharing == "propetl-or" else bank.num_layers
            bank.tasks[task].set_packed(
                {  # kept packed: 1 bit per entry in memory too
                    name: _packed(
                        tensors, metadata, f"{bank_name}.{name}", (rows, *shape), masks_path
                    )
                    for name, shape in bank.masked.items()
                }
            )
            bank.forget(task)
        try:
            model.heads[task].load_state_dict(head)
        except RuntimeError as err:
            raise CheckpointError(
                f"{folder / 'head.safetensors'}: does not fit the head: {err}"
            ) from err
    except BaseException:
        model.remove_task(task)
        raise
    model._place_task(task, next(model.backbone.parameters()).device)


def file_sizes(directory: Path) -> dict[str, int]:
    """Bytes on disk: the shared files and each task's folder."""
    out = {
        "config": (directory / CONFIG_FILE).stat().st_size,
        "prototype": (directory / PROTOTYPE_FILE).stat().st_size,
    }
    for task in saved_tasks(directory):
        folder = directory / TASKS_DIR / task
        out[f"task:{task}:masks"] = (folder / "masks.safetensors").stat().st_size
        out[f"task:{task}:head"] = (folder / "head.safetensors").stat().st_size
        out[f"task:{task}:meta"] = (folder / "task.json").stat().st_size
    return out

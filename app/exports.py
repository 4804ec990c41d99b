"""One task of a registered prototype as a zip: its ProPETL folder, a PEFT LoRA adapter or a
merged HF model (`propetl.export`), for the API and the Models tab."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from propetl.config import PropetlConfig
from propetl.export import FORMATS, ExportError, check_config, export_task

from . import bundles
from .models import Prototype
from .settings import get_settings

__all__ = ["FORMATS", "ExportError", "export_zip"]


def _family(proto: Prototype) -> str:
    from propetl.checkpoint import read_manifest
    from propetl.families import family_for

    try:
        return family_for(str(read_manifest(Path(proto.artifact_path)).get("model_type"))).name
    except (OSError, ValueError, KeyError):
        return proto.backbone.name


def export_zip(proto: Prototype, task: str, fmt: str) -> Path:
    """A zip of `task` in format `fmt` ("propetl", "peft" or "merged").

    Raises `ExportError` (before loading anything) when the format cannot hold the task with
    the same logits, and `FileNotFoundError` when the task or its files are gone.
    """
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    if not any(m.task.name == task for m in proto.mask_sets):
        raise FileNotFoundError(f"prototype {proto.uid[:8]} has no masks for task {task!r}")
    if fmt == "propetl":
        return bundles.task_zip(proto, task)
    check_config(PropetlConfig.from_dict(proto.config), task, fmt, _family(proto))
    from propetl.model import ProPETLModel

    name = f"propetl-{proto.uid[:8]}-{task}-{fmt}"
    exports = get_settings().data_dir / "exports"
    exports.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=exports, prefix=".export-") as tmp:
        model = ProPETLModel.from_pretrained(proto.artifact_path, tasks=[task]).eval()
        export_task(model, task, Path(tmp) / name, fmt)
        archive = shutil.make_archive(str(Path(tmp) / name), "zip", root_dir=tmp, base_dir=name)
        target = exports / f"{name}.zip"
        Path(archive).replace(target)
    return target

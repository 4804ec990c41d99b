"""Zip downloads of a prototype (the whole bundle) or of one task's masks."""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path

from .models import Prototype
from .settings import get_settings


def _zip(sources: list[tuple[Path, str]], target: Path) -> Path:
    """Write the zip under a name of its own, then move it onto `target` at once: concurrent
    requests each build whole, and a reader never sees a half-written or missing file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}-", suffix=".tmp")
    try:
        with (
            os.fdopen(fd, "wb") as handle,
            zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED) as archive,
        ):
            for root, prefix in sources:
                files = (
                    [root]
                    if root.is_file()
                    else sorted(  # links could point anywhere
                        p for p in root.rglob("*") if p.is_file() and not p.is_symlink()
                    )
                )
                for path in files:
                    name = prefix if root.is_file() else f"{prefix}/{path.relative_to(root)}"
                    archive.write(path, name)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _exports() -> Path:
    return get_settings().data_dir / "exports"


def bundle_zip(proto: Prototype) -> Path:
    """The whole model folder: config, shared prototype and every remaining task."""
    root = Path(proto.artifact_path)
    if not root.is_dir():
        raise FileNotFoundError(f"the files of prototype {proto.uid} are gone")
    return _zip([(root, f"propetl-{proto.uid[:8]}")], _exports() / f"propetl-{proto.uid}.zip")


def task_zip(proto: Prototype, task: str) -> Path:
    """One task as a complete model folder of its own (the shared prototype, the task's
    folder, a config listing only that task): it loads with `propetl predict --model` or
    `ProPETLModel.from_pretrained` once unzipped, and its task folder can be added onto the
    same prototype elsewhere (`propetl export --out` into that model folder)."""
    from propetl.checkpoint import export_tasks

    mask_set = next((m for m in proto.mask_sets if m.task.name == task), None)
    if mask_set is None or not Path(mask_set.artifact_path).is_dir():
        raise FileNotFoundError(f"prototype {proto.uid[:8]} has no masks for task {task!r}")
    name = f"propetl-{proto.uid[:8]}-{task}"
    _exports().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=_exports(), prefix=".export-") as tmp:
        folder = export_tasks(Path(proto.artifact_path), [task], Path(tmp) / name)
        return _zip([(folder, name)], _exports() / f"{name}.zip")

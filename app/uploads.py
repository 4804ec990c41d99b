"""Users' own data files: each user's uploads live in their own folder and are named, in job
specs, by their file name (`reviews.csv`), never by a server path.

A task trained from `reviews.csv` is called `reviews` everywhere else (the model, predict,
job lists, run comparison): `task_name()` gives that one name.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import IO

from propetl.data.user_file import DEFAULT_MAX_BYTES

from .settings import Settings, get_settings

#: Suffixes of a user's own data file given as a task.
DATA_SUFFIXES = (".csv", ".tsv", ".jsonl")
#: The largest file an upload may be, in the dashboard (Gradio's `max_file_size`) and in the
#: API's routes that take files alike.
MAX_UPLOAD_BYTES = DEFAULT_MAX_BYTES


class UploadNotFound(LookupError):
    """No upload of that name in the caller's folder (HTTP 404)."""


class UploadTooLarge(ValueError):
    """An uploaded file above `MAX_UPLOAD_BYTES` (HTTP 413); nothing of it is kept."""


def copy_capped(stream: IO[bytes], target: Path) -> Path:
    """Copy `stream` to `target` 1 MB at a time; past `MAX_UPLOAD_BYTES`, `target` is removed
    and `UploadTooLarge` names the limit (an oversized file is never held whole)."""
    limit, written = MAX_UPLOAD_BYTES, 0
    try:
        with target.open("wb") as out:
            while chunk := stream.read(1 << 20):
                written += len(chunk)
                if written > limit:
                    raise UploadTooLarge(
                        f"the file is larger than the {limit / 1e6:g} MB "
                        f"({limit:,} bytes) upload limit"
                    )
                out.write(chunk)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return target


def is_data_file(task: str) -> bool:
    """True when `task` names a data file (an upload name or, from the CLI, a path)."""
    return Path(task).suffix.lower() in DATA_SUFFIXES


def is_upload_name(task: str) -> bool:
    """True when `task` is a bare upload name: a data file name with no folder in it."""
    return (
        is_data_file(task)
        and "/" not in task
        and "\\" not in task
        and task not in (".", "..")
        and not task.startswith("~")
    )


def task_name(task: str) -> str:
    """The one name of a task: `reviews` for `reviews.csv` (or a CLI path to it)."""
    return Path(task).stem if is_data_file(task) else task


def safe_upload_name(name: str) -> str:
    """A file name to keep an upload under: no folders, no leading dot, plain characters."""
    path = Path(name.replace("\\", "/")).name
    suffix = Path(path).suffix.lower()
    stem = re.sub(r"[^A-Za-z0-9_.\-]+", "_", Path(path).stem).strip("._-")[:100]
    return f"{stem or 'upload'}{suffix}"


def folder_for(owner: str, settings: Settings | None = None) -> Path:
    """The uploads folder of `owner` (a hash keeps odd user names out of the path)."""
    settings = settings or get_settings()
    safe = re.sub(r"[^A-Za-z0-9_\-]+", "_", owner)[:40] or "user"
    digest = hashlib.sha256(owner.encode()).hexdigest()[:8]
    return settings.data_dir / "uploads" / f"{safe}-{digest}"


def list_uploads(owner: str, settings: Settings | None = None) -> list[Path]:
    """The owner's uploaded data files, by name."""
    folder = folder_for(owner, settings)
    if not folder.is_dir():
        return []
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.is_symlink() and p.suffix.lower() in DATA_SUFFIXES
    )


def resolve(owner: str, name: str, settings: Settings | None = None) -> Path:
    """The file of `owner`'s upload `name`; `UploadNotFound` when they have none of that name
    (whoever else may have one)."""
    folder = folder_for(owner, settings)
    path = folder / name
    if (
        not is_upload_name(name)
        or not path.is_file()
        or path.is_symlink()
        or path.resolve().parent != folder.resolve()
    ):
        raise UploadNotFound(
            f"you have no upload named {name!r}; upload the file first "
            "(Launch tab, or POST /api/uploads)"
        )
    return path


def resolve_tasks(tasks: list[str], owner: str, settings: Settings | None = None) -> list[str]:
    """A job's tasks with each upload name replaced by the owner's file (what the engine
    loads; it names the task by the file's stem). Catalog names and CLI paths are kept."""
    out = []
    for task in tasks:
        try:
            out.append(str(resolve(owner, task, settings)) if is_upload_name(task) else task)
        except UploadNotFound:  # a file name relative to the CLI's folder: kept
            out.append(task)
    return out


def store(
    owner: str, source: Path, settings: Settings | None = None, name: str | None = None
) -> Path:
    """Keep `source` as one of `owner`'s uploads (see `store_in`)."""
    return store_in(folder_for(owner, settings), source, name)


def store_in(folder: Path, source: Path, name: str | None = None) -> Path:
    """Copy `source` into an uploads `folder` under a safe name; never over another file,
    never through a link (written to a temporary file and renamed into place). Content that
    is already there, under any name, is reused: the existing file is returned. New content
    under a taken name becomes a new version, `name-2.csv`, `name-3.csv`..."""
    folder.mkdir(parents=True, exist_ok=True)
    base = Path(safe_upload_name(name or source.name))
    data = source.read_bytes()
    same = _same_content(folder, data, base.suffix)
    if same is not None:
        return same
    for n in range(1, 1000):
        target = folder / (base.name if n == 1 else f"{base.stem}-{n}{base.suffix}")
        if target.is_symlink() or not target.exists():
            break
    else:
        raise FileExistsError(f"too many uploads named {base.name}")
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _same_content(folder: Path, data: bytes, suffix: str) -> Path | None:
    """An upload in `folder` (same format) holding exactly `data`, if there is one."""
    digest = hashlib.sha256(data).digest()
    for path in sorted(folder.iterdir()):
        if path.is_symlink() or not path.is_file() or path.suffix.lower() != suffix:
            continue
        if (
            path.stat().st_size == len(data)
            and hashlib.sha256(path.read_bytes()).digest() == digest
        ):
            return path
    return None

"""The task catalog: bundled and GLUE tasks by name, or a user file by path."""

from __future__ import annotations

from pathlib import Path

from .bundled import BUNDLED, bundled_info, load_bundled
from .errors import UnknownTaskError
from .glue import GLUE, glue_info, load_glue
from .splits import cap_splits
from .task import TaskData, TaskInfo
from .text2text import TEXT2TEXT, load_text2text, text2text_info_of
from .user_file import load_user_file
from .user_read import SUPPORTED_SUFFIXES


def task_names() -> list[str]:
    """Catalog names: bundled tasks first, then text-to-text tasks, then GLUE."""
    return [*BUNDLED, *TEXT2TEXT, *GLUE]


def canonical_name(name: str) -> str | None:
    """Catalog name for `name` ("glue/sst2" and "SST2" give "sst2"), or None if unknown."""
    key = name.strip().lower()
    for prefix in ("nyu-mll/glue/", "glue/"):
        if key.startswith(prefix) and key[len(prefix) :] in GLUE:
            return key[len(prefix) :]
    return key if key in BUNDLED or key in TEXT2TEXT or key in GLUE else None


def list_tasks() -> list[TaskInfo]:
    """Info of every catalog task (bundled sizes computed once per process)."""
    return (
        [bundled_info(n) for n in BUNDLED]
        + [text2text_info_of(n) for n in TEXT2TEXT]
        + [glue_info(n) for n in GLUE]
    )


def _unknown(*names: str) -> UnknownTaskError:
    named = ", ".join(repr(n) for n in names)
    return UnknownTaskError(
        f"unknown task{'s' if len(names) > 1 else ''} {named}; known tasks: "
        f"{', '.join(task_names())} (GLUE tasks also as 'glue/<name>'), or give a path to a "
        f"{'/'.join(SUPPORTED_SUFFIXES)} file"
    )


def unknown_tasks_message(names: list[str]) -> str | None:
    """One message naming every name that is neither a catalog task nor a data file path,
    or None when all are known."""
    unknown = [
        str(n) for n in names if canonical_name(str(n)) is None and not _looks_like_path(str(n))
    ]
    return str(_unknown(*unknown)) if unknown else None


def get_task_info(name: str) -> TaskInfo:
    """Info of a catalog task; raises `UnknownTaskError` listing the known names."""
    key = canonical_name(name)
    if key is None:
        raise _unknown(name)
    if key in TEXT2TEXT:
        return text2text_info_of(key)
    return bundled_info(key) if key in BUNDLED else glue_info(key)


def _looks_like_path(name: str) -> bool:
    path = Path(name)
    return path.suffix.lower() in SUPPORTED_SUFFIXES or path.is_file()


def load_task(
    name_or_path: str | Path,
    *,
    seed: int = 42,
    max_examples: int | None = None,
    cache_dir: str | Path | None = None,
) -> TaskData:
    """Load a catalog task by name or a user file by path, with fixed seeded splits.

    `max_examples` keeps a deterministic prefix of each split (splits are stored shuffled).
    """
    key = canonical_name(str(name_or_path))
    if key in BUNDLED:
        data = load_bundled(key, seed)
    elif key in TEXT2TEXT:
        data = load_text2text(key, seed)
    elif key in GLUE:
        data = load_glue(key, seed=seed, cache_dir=cache_dir)
    elif _looks_like_path(str(name_or_path)):
        data = load_user_file(name_or_path, seed=seed)
    else:
        raise _unknown(str(name_or_path))
    data.splits = cap_splits(data.splits, max_examples)
    return data

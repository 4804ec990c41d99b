"""Dataset cards of the tasks a user may train on (the catalog's and their own uploads), for
the Launch tab and `GET /api/tasks/{name}/card`: cached per file version, backbone and max
length (tokenising a task's training texts takes a second or so)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from .access import Access
from .uploads import UploadNotFound, is_data_file, is_upload_name


def user_task(access: Access, task: str) -> str:
    """What to load for `task` as `access`'s user names it: their upload's file, or a catalog
    name. Anything else is refused, told by its name alone (`UploadNotFound` for a file or
    a path, the catalog's `UnknownTaskError` otherwise), never read as a server file."""
    from propetl.data import get_task_info
    from propetl.data.catalog import canonical_name

    from .specs import is_server_path

    if is_upload_name(task):
        return str(access.upload(task))
    if is_data_file(task) or is_server_path(task):
        raise UploadNotFound(f"{task!r} is not one of your uploads")
    if canonical_name(task) is None:
        get_task_info(task)  # raises: not a catalog task
    return task


def _source(access: Access, task: str) -> tuple[str, int]:
    """What to load for `task` (a catalog name, or the caller's upload) and its version."""
    source = user_task(access, task)
    return source, Path(source).stat().st_mtime_ns if is_upload_name(task) else 0


@lru_cache(maxsize=32)
def _card(
    source: str, _version: int, backbone: str | None, max_length: int | None, name: str
) -> dict[str, Any]:
    from propetl.backbones import load_tokenizer
    from propetl.data import load_task
    from propetl.data.card import build_card

    data = load_task(source)
    tokenizer = load_tokenizer(backbone) if backbone else None
    card = build_card(data, tokenizer, max_length, backbone)
    card["task"] = name
    return card


class BackboneRefused(ValueError):
    """A backbone folder a job spec could not name either (the message is the job spec's)."""


def task_card(
    access: Access, task: str, backbone: str | None = "minilm-l6", max_length: int | None = 128
) -> dict[str, Any]:
    """The card of `task` as `access`'s user sees it (`UploadNotFound` for another's file,
    `BackboneRefused` for a server folder outside `PROPETL_BACKBONE_DIRS`, looked at no more
    than a job spec's, `ValueError` for an unknown or unloadable task or backbone)."""
    from .specs import backbone_problem, check_named_backbone
    from .uploads import task_name

    refused = backbone_problem(backbone or "", paths=False)
    if refused:
        raise BackboneRefused(refused)
    if backbone:
        check_named_backbone(backbone)  # a hub id is never read from a folder of that name
    source, version = _source(access, task)
    return _card(
        source, version, backbone or None, int(max_length) if max_length else None, task_name(task)
    )

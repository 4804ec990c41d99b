"""Tasks for ProPETL: catalog, loaders, user-file validation, metrics, collation, sampling.

The tokenising helpers (`tokenize_task`, `MultiTaskCollator`) and `MultiTaskBatchSampler`
import torch / transformers, so they load lazily on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .catalog import get_task_info, list_tasks, load_task, task_names
from .errors import DatasetValidationError, TaskUnavailableError, UnknownTaskError
from .glue import glue_task_from_dataset_dict, load_glue
from .metrics import compute_metrics
from .task import TaskData, TaskInfo
from .user_file import load_user_file, validate_user_file

if TYPE_CHECKING:
    from .collate import MultiTaskCollator, tokenize_task
    from .sampler import MultiTaskBatchSampler, task_sampling_probs

_LAZY = {
    "MultiTaskCollator": "collate",
    "tokenize_task": "collate",
    "MultiTaskBatchSampler": "sampler",
    "task_sampling_probs": "sampler",
}

__all__ = [
    "DatasetValidationError",
    "MultiTaskBatchSampler",
    "MultiTaskCollator",
    "TaskData",
    "TaskInfo",
    "TaskUnavailableError",
    "UnknownTaskError",
    "compute_metrics",
    "get_task_info",
    "glue_task_from_dataset_dict",
    "list_tasks",
    "load_glue",
    "load_task",
    "load_user_file",
    "task_names",
    "task_sampling_probs",
    "tokenize_task",
    "validate_user_file",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

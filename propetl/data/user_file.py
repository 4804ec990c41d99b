"""A user's own CSV / TSV / JSONL file as a task: validate, split, load."""

from __future__ import annotations

from pathlib import Path

from .errors import DatasetValidationError
from .splits import shuffle_frame, split_80_10_10, to_dataset_dict
from .task import SPLITS, TaskData, TaskInfo
from .user_checks import SPLIT_COLUMN, Prepared, check_table
from .user_read import read_table

DEFAULT_MAX_BYTES = 50_000_000


def _prepare(path: str | Path, task_type: str, max_bytes: int) -> tuple[Prepared | None, list[str]]:
    raw, problems = read_table(path, max_bytes)
    if raw is None:
        return None, problems
    prepared, more = check_table(raw, task_type)
    return prepared, problems + more


def validate_user_file(
    path: str | Path, *, task_type: str = "auto", max_bytes: int = DEFAULT_MAX_BYTES
) -> list[str]:
    """Every problem found in the file (an empty list means it loads)."""
    return _prepare(path, task_type, max_bytes)[1]


def _info(name: str, prepared: Prepared, sizes: dict[str, int]) -> TaskInfo:
    regression = prepared.label_names is None
    return TaskInfo(
        name=name,
        source="file",
        text_columns=prepared.text_columns,
        label_names=prepared.label_names,
        metrics=("pearson", "spearman") if regression else ("accuracy", "macro_f1"),
        main_metric="combined" if regression else "accuracy",
        description="Loaded from a user file.",
        sizes=sizes,
    )


def load_user_file(
    path: str | Path,
    *,
    name: str | None = None,
    task_type: str = "auto",
    seed: int = 42,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> TaskData:
    """Load a user file as a task; raises `DatasetValidationError` listing every problem.

    With a 'split' column its train/dev/test rows are used as given (each split in a seeded
    order); without one, a seeded 80/10/10 split is made (stratified for classification).
    """
    prepared, problems = _prepare(path, task_type, max_bytes)
    if problems or prepared is None:
        raise DatasetValidationError(problems, source=str(path))
    frame = prepared.frame
    regression = prepared.label_names is None
    if prepared.has_split:
        frames = {s: shuffle_frame(frame[frame[SPLIT_COLUMN] == s], seed) for s in SPLITS}
    else:
        frames = split_80_10_10(frame, seed, stratify=not regression)
    splits = to_dataset_dict(frames, pair=len(prepared.text_columns) == 2, regression=regression)
    info = _info(name or Path(path).stem, prepared, {k: len(v) for k, v in frames.items()})
    return TaskData(info=info, splits=splits)

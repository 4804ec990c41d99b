"""Label a whole file with a trained model, streaming: rows are read, predicted in batches and
written as they go, so memory holds one batch whatever the file's size.

Input: CSV (a header row) or JSON Lines, with a text column (`text` by default), optionally a
second text column for pair tasks and a `task` column naming each row's task (rows without
one use the default task). Rows of different tasks share a batch (one mixed-task forward).
Output: a CSV with `row, task, text, label, score, probabilities, error`; `probabilities` is
the JSON object of every class's probability, `score` the chosen label's; a row that cannot
be labelled (empty text, unknown task) keeps its place with the reason in `error`.
"""

from __future__ import annotations

import csv
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .csvout import SafeWriter

SUFFIXES = (".csv", ".jsonl")
COLUMNS = ["row", "task", "text", "label", "score", "probabilities", "error"]


class LabelFileError(ValueError):
    """The file cannot be labelled at all (format, missing column, no default task)."""


@dataclass
class LabelSummary:
    rows: int = 0
    labelled: int = 0
    errors: int = 0
    stopped: bool = False
    seconds: float = 0.0


def _records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(row number from 1, the row's fields), one at a time."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            try:
                if not reader.fieldnames:
                    raise LabelFileError(f"{path.name}: no header row")
                yield from enumerate(reader, 1)
            except csv.Error as err:
                raise LabelFileError(f"{path.name}: line {reader.line_num}: {err}") from err
    elif suffix == ".jsonl":
        with path.open(encoding="utf-8") as handle:
            number = 0
            for line_no, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                number += 1
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as err:
                    raise LabelFileError(f"{path.name}: line {line_no} is not JSON: {err}") from err
                if not isinstance(row, dict):
                    raise LabelFileError(f"{path.name}: line {line_no} is not a JSON object")
                yield number, row
    else:
        raise LabelFileError(f"{path.name}: give a {' or '.join(SUFFIXES)} file")


def count_rows(path: Path) -> int:
    """Rows in the file (read once, streaming): the job's total for its progress."""
    return sum(1 for _ in _records(path))


def check_columns(
    path: Path,
    text_column: str,
    task_column: str,
    default_task: str | None,
    pair_column: str | None = None,
    *,
    whole: bool = False,
) -> list[str]:
    """Fail early when the first row lacks the text column, or when rows name no task and
    no default task is given; with `whole`, also when any later line cannot be read (a
    JSONL line that is not a JSON object, a CSV line the reader refuses). Returns the tasks
    the rows read name (the default for rows without one), in the order they first appear
    (with `whole`, those of every row)."""
    records = _records(path)
    for _, row in records:
        if text_column not in row:
            raise LabelFileError(
                f"{path.name}: no {text_column!r} column (columns: {', '.join(map(str, row))})"
            )
        if pair_column and pair_column not in row:
            raise LabelFileError(f"{path.name}: no {pair_column!r} column")
        if task_column not in row and not default_task:
            raise LabelFileError(
                f"{path.name}: no {task_column!r} column: choose a task for every row"
            )
        named = {_row_task(row, task_column, default_task): None}
        if whole:
            for _, later in records:
                named.setdefault(_row_task(later, task_column, default_task), None)
        return [t for t in named if t]
    raise LabelFileError(f"{path.name}: the file has no rows")


def _row_task(row: dict, task_column: str, default_task: str | None) -> str:
    """The task a row names ('' for none)."""
    return str(row.get(task_column) or default_task or "").strip()


def label_file(
    predictor: Any,
    source: Path,
    dest: Path,
    *,
    task: str | None = None,
    text_column: str = "text",
    pair_column: str | None = None,
    task_column: str = "task",
    batch_size: int = 32,
    on_progress: Callable[[int, float], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> LabelSummary:
    """Label every row of `source` with `predictor` (propetl's `Predictor`) into the CSV
    `dest` (written to a temporary file, renamed when complete). `on_progress(rows, rows/s)`
    is called after each batch; `should_stop()` ends the run early (no `dest` then)."""
    check_columns(source, text_column, task_column, task, pair_column)
    known = set(predictor.tasks)
    summary = LabelSummary()
    started = time.perf_counter()
    tmp = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tmp.open("w", newline="", encoding="utf-8") as out:
        writer = SafeWriter(out)
        writer.writerow(COLUMNS)
        # rows in file order: (row number, task, text, pair, why it cannot be labelled)
        pending: list[tuple[int, str, str, str | None, str | None]] = []

        def flush() -> None:
            good = [(t, (x, p)) for _, t, x, p, problem in pending if problem is None]
            answers = iter(predictor.predict_mixed(good) if good else [])
            for number, name, text, _, problem in pending:
                if problem is not None:
                    writer.writerow([number, name, text, "", "", "", problem])
                    continue
                row = next(answers)
                if row.get("label") is None:  # regression: the value is the answer
                    label, score, probs = row.get("value"), "", "{}"
                else:
                    label = row["label"]
                    score = f"{row['scores'][label]:.6f}"
                    probs = json.dumps({k: round(v, 6) for k, v in row["scores"].items()})
                writer.writerow([number, name, text, label, score, probs, ""])
            summary.labelled += len(good)
            summary.errors += len(pending) - len(good)
            pending.clear()

        for number, row in _records(source):
            summary.rows += 1
            name = _row_task(row, task_column, task)
            text = row.get(text_column)
            pair = row.get(pair_column) if pair_column else None
            problem = None
            if not isinstance(text, str) or not text.strip():
                problem = f"empty {text_column!r}"
            elif name not in known:
                problem = f"unknown task {name!r}" if name else "no task"
            elif pair_column and (not isinstance(pair, str) or not pair.strip()):
                problem = f"empty {pair_column!r}"
            pending.append(
                (
                    number,
                    name,
                    text if isinstance(text, str) else "",
                    pair if isinstance(pair, str) else None,
                    problem,
                )
            )
            if len(pending) >= batch_size:
                flush()
                elapsed = time.perf_counter() - started
                if on_progress:
                    on_progress(summary.rows, summary.rows / max(elapsed, 1e-6))
                if should_stop and should_stop():
                    summary.stopped = True
                    break
        if not summary.stopped:
            flush()
    summary.seconds = time.perf_counter() - started
    if summary.stopped:
        tmp.unlink(missing_ok=True)
    else:
        os.replace(tmp, dest)
        if on_progress:
            on_progress(summary.rows, summary.rows / max(summary.seconds, 1e-6))
    return summary

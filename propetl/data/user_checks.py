"""Check a user's raw table (columns, texts, labels, splits) and normalise it."""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass

import pandas as pd

from .splits import MIN_PER_CLASS_FOR_SPLIT
from .task import LABEL, TEXT, TEXT_PAIR
from .user_read import MAX_QUOTED, RawTable, quote_lines

TASK_TYPES: tuple[str, ...] = ("auto", "classification", "regression")
SPLIT_COLUMN = "split"
SPLIT_ALIASES: dict[str, str] = {
    "train": "train",
    "training": "train",
    "dev": "dev",
    "validation": "dev",
    "valid": "dev",
    "val": "dev",
    "test": "test",
    "testing": "test",
}
TEXT_LAYOUTS: tuple[tuple[str, ...], ...] = (
    ("text", "text_pair"),
    ("sentence1", "sentence2"),
    ("text",),
    ("sentence",),
)
_FEW_ADVICE = "add examples, merge classes, or add a 'split' column"
_MISSING_WORDS = {"", "nan", "na", "n/a", "null", "none"}
_EXPECTED_TEXT = "'text' or 'sentence' (pairs: 'text' + 'text_pair', or 'sentence1' + 'sentence2')"


@dataclass
class Prepared:
    """A checked table: normalised columns text[, text_pair], label[, split]."""

    frame: pd.DataFrame
    text_columns: tuple[str, ...]
    label_names: tuple[str, ...] | None
    has_split: bool


def _is_missing(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return isinstance(value, str) and value.strip().lower() in _MISSING_WORDS


def _is_blank_text(value: object) -> bool:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return True
    return not str(value).strip()


def _suggest(expected: str, found: list[str]) -> str:
    """A rename hint: the closest column name, or the only candidate column."""
    close = difflib.get_close_matches(expected, found, n=1, cutoff=0.6)
    if close:
        return f"; did you mean {close[0]!r} (rename it to {expected!r})?"
    if len(found) == 1:
        return f"; if {found[0]!r} holds it, rename that column to {expected!r}"
    return ""


def _resolve_columns(columns: list[str]) -> tuple[dict[str, str], list[str]]:
    """Map normalised names (text, text_pair, label, split) to the file's column names."""
    lower = {c.lower(): c for c in columns}
    found = ", ".join(repr(c) for c in columns) or "none"
    mapping: dict[str, str] = {}
    problems: list[str] = []
    layout = next((lay for lay in TEXT_LAYOUTS if all(c in lower for c in lay)), None)
    if layout is None:
        half = [c for c in ("sentence1", "sentence2", "text_pair") if c in lower]
        hint = f" ({half[0]!r} needs its partner)" if half else ""
        candidates = [c for c in columns if c.lower() not in {LABEL, SPLIT_COLUMN}]
        problems.append(
            f"no text column: expected {_EXPECTED_TEXT}; found columns: {found}{hint}"
            + _suggest("text", candidates)
        )
    else:
        for norm, name in zip((TEXT, TEXT_PAIR), layout, strict=False):
            mapping[norm] = lower[name]
    if LABEL in lower:
        mapping[LABEL] = lower[LABEL]
    else:
        problems.append(f"no 'label' column; found columns: {found}" + _suggest(LABEL, columns))
    if SPLIT_COLUMN in lower:
        mapping[SPLIT_COLUMN] = lower[SPLIT_COLUMN]
    return mapping, problems


def _check_texts(frame: pd.DataFrame, mapping: dict[str, str], lines: pd.Series) -> list[str]:
    problems = []
    for norm in (TEXT, TEXT_PAIR):
        if norm in mapping:
            empty = frame[norm].map(_is_blank_text)
            if empty.any():
                problems.append(
                    f"column {mapping[norm]!r} is empty in {int(empty.sum())} row(s) "
                    f"({quote_lines(lines[empty].tolist())})"
                )
    return problems


def _labels(
    values: pd.Series, task_type: str, lines: pd.Series
) -> tuple[pd.Series, tuple[str, ...] | None, list[str]]:
    """Class indices (or floats), class names (None for regression) and problems."""
    present = values[~values.map(_is_missing)]
    as_text = present.map(lambda v: v.strip() if isinstance(v, str) else v)
    numbers = pd.to_numeric(
        as_text.map(lambda v: v if not isinstance(v, bool) else None), errors="coerce"
    )
    numeric = bool(numbers.notna().all()) and bool(numbers.map(math.isfinite).all())
    integral = numeric and bool((numbers == numbers.round()).all())
    regression = task_type == "regression" or (task_type == "auto" and numeric and not integral)
    if regression:
        bad = ~numbers.map(lambda x: pd.notna(x) and math.isfinite(x))
        if bad.any():
            shown = ", ".join(repr(v) for v in present[bad].head(MAX_QUOTED))
            return (
                numbers,
                None,
                [
                    f"task_type='regression' but {int(bad.sum())} label(s) are not numbers: {shown} "
                    f"({quote_lines(lines[present[bad].index].tolist())})"
                ],
            )
        return numbers.astype(float), None, []
    if integral:
        ints = numbers.astype(int)
        names = tuple(str(n) for n in sorted(ints.unique()))
        index = {int(name): i for i, name in enumerate(names)}
        return ints.map(index), names, []
    strings = as_text.map(str)
    names = tuple(sorted(strings.unique()))
    index = {name: i for i, name in enumerate(names)}
    return strings.map(index), names, []


def _check_splits(splits: pd.Series, lines: pd.Series) -> tuple[pd.Series, list[str]]:
    normal = splits.map(lambda v: SPLIT_ALIASES.get(str(v).strip().lower()) if v else None)
    problems: list[str] = []
    bad = normal.isna()
    if bad.any():
        values = ", ".join(repr(v) for v in splits[bad].drop_duplicates().head(MAX_QUOTED))
        problems.append(
            f"column 'split' must be train, dev (or validation) or test; {int(bad.sum())} row(s) "
            f"have other values: {values} ({quote_lines(lines[bad].tolist())})"
        )
    else:
        for name in ("train", "dev", "test"):
            if not (normal == name).any():
                problems.append(
                    f"split {name!r} has no rows; give every row a split, or drop the 'split' "
                    "column to get an automatic 80/10/10 split"
                )
    return normal, problems


def _few(counts: pd.Series, need: int, where: str, names: tuple[str, ...]) -> list[str]:
    """One message per class (first 10) with fewer than `need` examples."""
    hint = "" if where else f" for an automatic stratified 80/10/10 split; {_FEW_ADVICE}"
    small = counts[counts < need]
    problems = [
        f"class {names[i]!r} has only {n} example(s){where}; at least {need} are needed{hint}"
        for i, n in small.head(10).items()
    ]
    if len(small) > 10:
        problems.append(f"... and {len(small) - 10} more classes with fewer than {need} examples")
    return problems


def _check_classes(frame: pd.DataFrame, names: tuple[str, ...], split_mode: str) -> list[str]:
    """Class checks; split_mode is "given" (a valid split column), "auto" or "none"."""
    train = frame[frame[SPLIT_COLUMN] == "train"] if split_mode == "given" else frame
    counts = train[LABEL].value_counts().reindex(range(len(names)), fill_value=0)
    problems = []
    if (counts > 0).sum() == 1:
        where = " in train" if split_mode == "given" else ""
        only = names[int(counts.idxmax())]
        problems.append(f"only one class ({only!r}){where}; classification needs at least 2")
    if split_mode == "auto":
        return problems + _few(counts, MIN_PER_CLASS_FOR_SPLIT, "", names)
    if split_mode == "given":
        held = frame[(frame[SPLIT_COLUMN] != "train") & ~frame[LABEL].isin(train[LABEL])]
        for label, group in held.groupby(LABEL):
            found = ", ".join(f"{n} in {s}" for s, n in group[SPLIT_COLUMN].value_counts().items())
            problems.append(
                f"label {names[int(label)]!r} appears in dev/test ({found}) but never in train"
            )
        return problems + _few(counts[counts > 0], 2, " in train", names)
    return problems


def check_table(raw: RawTable, task_type: str = "auto") -> tuple[Prepared | None, list[str]]:
    """Validate a raw table; returns the normalised table (None if unusable) and problems."""
    if task_type not in TASK_TYPES:
        raise ValueError(f"task_type must be one of {TASK_TYPES}, got {task_type!r}")
    mapping, problems = _resolve_columns([str(c) for c in raw.frame.columns])
    if problems:
        return None, problems
    frame = pd.DataFrame({norm: raw.frame[col] for norm, col in mapping.items()})
    lines = pd.Series(raw.lines, index=frame.index)
    problems += _check_texts(frame, mapping, lines)
    missing = frame[LABEL].map(_is_missing)
    if missing.any():
        problems.append(
            f"the label is missing in {int(missing.sum())} row(s) "
            f"({quote_lines(lines[missing].tolist())})"
        )
    labels, names, label_problems = _labels(frame[LABEL], task_type, lines)
    problems += label_problems
    has_split = SPLIT_COLUMN in frame
    split_problems: list[str] = []
    if has_split:
        frame[SPLIT_COLUMN], split_problems = _check_splits(frame[SPLIT_COLUMN], lines)
        problems += split_problems
    frame[LABEL] = labels
    usable = frame[~missing]
    if names is not None and not label_problems:
        mode = "auto" if not has_split else "none" if split_problems else "given"
        problems += _check_classes(usable, names, mode)
    elif names is None and not has_split and len(usable) < MIN_PER_CLASS_FOR_SPLIT:
        problems.append(
            f"only {len(usable)} labelled row(s); an automatic 80/10/10 split needs "
            f"at least {MIN_PER_CLASS_FOR_SPLIT}"
        )
    usable = usable.astype({c: str for c in (TEXT, TEXT_PAIR) if c in usable})
    if names is not None and not label_problems:
        usable = usable.astype({LABEL: "int64"})
    text_columns = tuple(mapping[c] for c in (TEXT, TEXT_PAIR) if c in mapping)
    return Prepared(usable, text_columns, names, has_split), problems

"""Read a user's CSV / TSV / JSONL file into a raw table, reporting why it cannot be read."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

SUPPORTED_SUFFIXES: tuple[str, ...] = (".csv", ".tsv", ".jsonl")
#: How many offending line numbers a message quotes.
MAX_QUOTED = 5


@dataclass
class RawTable:
    """Cells as read (strings for CSV/TSV, JSON values for JSONL) and each row's file line."""

    frame: pd.DataFrame
    lines: list[int]


def quote_lines(lines: list[int]) -> str:
    """'line 3' / 'lines 3, 5, 9, ...' for messages."""
    shown = ", ".join(str(n) for n in lines[:MAX_QUOTED])
    more = ", ..." if len(lines) > MAX_QUOTED else ""
    return f"line{'s' if len(lines) > 1 else ''} {shown}{more}"


def _megabytes(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB"


def _decode(raw: bytes) -> tuple[str | None, list[str]]:
    try:
        return raw.decode("utf-8-sig"), []
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        return None, [
            f"the file is not valid UTF-8 text (byte 0x{raw[exc.start]:02x} at line {line}, "
            f"column {column}); re-save it as UTF-8 (in Excel: 'CSV UTF-8'; in pandas: "
            f"to_csv(..., encoding='utf-8'))"
        ]


def _read_delimited(text: str, delimiter: str) -> tuple[RawTable | None, list[str]]:
    csv.field_size_limit(max(csv.field_size_limit(), len(text) + 1))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header: list[str] | None = None
    rows: list[list[str]] = []
    lines: list[int] = []
    bad: dict[int, list[int]] = {}
    try:
        for record in reader:
            if not any(cell.strip() for cell in record):
                continue
            if header is None:
                header = [cell.strip() for cell in record]
                continue
            if len(record) != len(header):
                bad.setdefault(len(record), []).append(reader.line_num)
                continue
            rows.append(record)
            lines.append(reader.line_num)
    except csv.Error as exc:
        return None, [
            f"cannot parse the file as {_kind(delimiter)} at line {reader.line_num}: {exc}"
        ]
    if header is None:
        return None, ["the file has no header and no rows"]
    problems = [
        f"{len(at)} row(s) have {n} field(s) but the header has {len(header)} "
        f"({quote_lines(at)}); check the delimiter and the quoting of texts that contain "
        f"{'tabs' if delimiter == chr(9) else 'commas'} or quotes"
        for n, at in sorted(bad.items())
    ]
    if len(set(header)) != len(header):
        dupes = sorted({h for h in header if header.count(h) > 1})
        problems.append(f"repeated column name(s) in the header: {', '.join(map(repr, dupes))}")
        return None, problems
    frame = pd.DataFrame(rows, columns=header, dtype=object)
    return RawTable(frame, lines), problems


def _kind(delimiter: str) -> str:
    return "TSV" if delimiter == "\t" else "CSV"


def _read_jsonl(text: str) -> tuple[RawTable | None, list[str]]:
    records: list[dict[str, object]] = []
    lines: list[int] = []
    invalid: list[tuple[int, str]] = []
    not_objects: list[int] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            invalid.append((number, f"{exc.msg} at column {exc.colno}"))
            continue
        if isinstance(value, dict):
            records.append(value)
            lines.append(number)
        else:
            not_objects.append(number)
    problems = [f"line {n} is not valid JSON ({why})" for n, why in invalid[:MAX_QUOTED]]
    if len(invalid) > MAX_QUOTED:
        problems.append(f"... and {len(invalid) - MAX_QUOTED} more lines that are not valid JSON")
    if not_objects:
        problems.append(
            f"{len(not_objects)} line(s) are JSON but not objects like "
            f'{{"text": ..., "label": ...}} ({quote_lines(not_objects)})'
        )
    frame = pd.DataFrame.from_records(records).astype(object) if records else pd.DataFrame()
    return RawTable(frame, lines), problems


def read_table(path: str | Path, max_bytes: int) -> tuple[RawTable | None, list[str]]:
    """Read `path`; returns (None, problems) when nothing usable could be read."""
    path = Path(path)
    if not path.is_file():
        return None, [f"file not found: {path}"]
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        return None, [
            f"unsupported file type {suffix or '(no extension)'!r}; "
            f"use one of {', '.join(SUPPORTED_SUFFIXES)}"
        ]
    size = path.stat().st_size
    if size > max_bytes:
        return None, [f"the file is {_megabytes(size)}, above the {_megabytes(max_bytes)} limit"]
    if size == 0:
        return None, ["the file is empty"]
    text, problems = _decode(path.read_bytes())
    if text is None:
        return None, problems
    if suffix == ".jsonl":
        table, problems = _read_jsonl(text)
    else:
        table, problems = _read_delimited(text, "\t" if suffix == ".tsv" else ",")
    if table is not None and table.frame.empty:
        problems.append("the file has no data rows")
        return None, problems
    return table, problems

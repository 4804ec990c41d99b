"""CSV written for people to open in a spreadsheet: a text cell that a spreadsheet would run
as a formula (it starts with =, +, -, @, a tab or a carriage return: a task, label or text
that a user chose) gets a leading apostrophe. Every CSV the product writes goes through here."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any, TextIO

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def defuse(value: Any) -> Any:
    """`value` itself, or a text that would start a formula prefixed with an apostrophe."""
    if isinstance(value, str) and value[:1] in FORMULA_STARTS:
        return "'" + value
    return value


class SafeWriter:
    """`csv.writer` whose rows have every text cell defused."""

    def __init__(self, handle: TextIO) -> None:
        self._writer = csv.writer(handle)

    def writerow(self, row: Iterable[Any]) -> None:
        self._writer.writerow([defuse(cell) for cell in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def to_csv(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> str:
    """A whole table as CSV text (header first, defused cells)."""
    buffer = io.StringIO()
    writer = SafeWriter(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()

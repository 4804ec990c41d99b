"""Errors raised by the data package; each carries a message fit to show a user as is."""

from __future__ import annotations


class UnknownTaskError(ValueError):
    """A task name is neither in the catalog nor a path to a data file."""


class TaskUnavailableError(RuntimeError):
    """A catalog task exists but its data cannot be obtained here (hub offline, not cached)."""


class DatasetValidationError(ValueError):
    """A user's data file has problems; `problems` lists every one found."""

    def __init__(self, problems: list[str], source: str = "the data file") -> None:
        self.problems = list(problems)
        self.source = source
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{len(self.problems)} problem(s) in {source}:\n{lines}")

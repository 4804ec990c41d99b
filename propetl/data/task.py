"""The two records every loader returns: `TaskInfo` (what a task is) and `TaskData` (its splits)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import datasets

#: Normalised column names of every loaded split.
TEXT = "text"
TEXT_PAIR = "text_pair"
LABEL = "label"
TARGET = "target"  # the target text of a text-to-text task (its source is TEXT)
KINDS: tuple[str, ...] = ("classification", "text2text")
SPLITS: tuple[str, ...] = ("train", "dev", "test")
SOURCES: tuple[str, ...] = ("bundled", "glue", "file", "hub")


@dataclass(frozen=True)
class TaskInfo:
    """Static description of a task: columns, labels, metrics, sizes.

    `label_names` is None for regression. `main_metric` names the value used to pick the
    best checkpoint ("combined" = mean of the two metrics for tasks that report two).
    """

    name: str
    source: str
    text_columns: tuple[str, ...]
    label_names: tuple[str, ...] | None
    metrics: tuple[str, ...]
    main_metric: str
    description: str = ""
    sizes: dict[str, int] | None = None
    kind: str = "classification"
    prompt: str = ""  # text-to-text: what follows the source in the model's input

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, got {self.source!r}")
        if not 1 <= len(self.text_columns) <= 2:
            raise ValueError("a task has one text column or a pair of them")
        allowed = (*self.metrics, "combined") if len(self.metrics) == 2 else self.metrics
        if self.main_metric not in allowed:
            raise ValueError(f"main_metric {self.main_metric!r} not in {allowed}")

    @property
    def num_labels(self) -> int:
        """Number of classes, or 1 for regression."""
        return 1 if self.label_names is None else len(self.label_names)

    @property
    def is_regression(self) -> bool:
        """True when the target is a real number."""
        return self.label_names is None and not self.generative

    @property
    def generative(self) -> bool:
        """True when the target is a text (source text -> target text)."""
        return self.kind == "text2text"

    @property
    def is_pair(self) -> bool:
        """True when examples are pairs of texts."""
        return len(self.text_columns) == 2

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (tuples become lists)."""
        out = asdict(self)
        for key in ("text_columns", "label_names", "metrics"):
            if out[key] is not None:
                out[key] = list(out[key])
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskInfo:
        """Inverse of `to_dict`."""
        labels = data.get("label_names")
        sizes = data.get("sizes")
        return cls(
            name=data["name"],
            source=data["source"],
            text_columns=tuple(data["text_columns"]),
            label_names=None if labels is None else tuple(labels),
            metrics=tuple(data["metrics"]),
            main_metric=data["main_metric"],
            description=data.get("description", ""),
            sizes=None if sizes is None else {k: int(v) for k, v in sizes.items()},
            kind=data.get("kind", "classification"),
            prompt=data.get("prompt", ""),
        )


@dataclass
class TaskData:
    """A task's info and its "train" / "dev" / "test" splits (columns text[, text_pair], label)."""

    info: TaskInfo
    splits: datasets.DatasetDict

    def sizes(self) -> dict[str, int]:
        """Number of rows per split."""
        return {name: len(self.splits[name]) for name in SPLITS}

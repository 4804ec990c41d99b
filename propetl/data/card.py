"""A dataset card for a task: split sizes, class balance and the majority baseline, text
lengths in tokens of a backbone with the share cut at a max length, duplicates, and a content
hash (the same rows give the same hash on every machine)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

from .task import SPLITS, TaskData

#: Share of training texts cut at max length from which the Launch tab warns.
TRUNCATION_WARNING = 0.2


def content_hash(data: TaskData) -> str:
    """sha256 of every split's rows (texts and label) in order, as canonical JSON lines."""
    digest = hashlib.sha256()
    for split in SPLITS:
        frame = data.splits[split].to_pandas()
        for row in frame.itertuples(index=False):
            digest.update(json.dumps([split, *[str(v) for v in row]], ensure_ascii=False).encode())
            digest.update(b"\n")
    return digest.hexdigest()


def _texts(data: TaskData, split: str) -> list[str]:
    columns = [c for c in data.info.text_columns if c in data.splits[split].column_names]
    rows = data.splits[split]
    if len(columns) == 1:
        return [str(t) for t in rows[columns[0]]]
    return [
        " ‖ ".join(str(x) for x in pair) for pair in zip(*(rows[c] for c in columns), strict=True)
    ]


def _removed_duplicates(name: str) -> dict[str, int] | None:
    """Rows the bundled loader dropped (repeated texts, and texts whose copies disagree)."""
    from .bundled import BUNDLED
    from .splits import dedupe_and_sort

    if name not in BUNDLED:
        return None
    _, duplicates, conflicting = dedupe_and_sort(BUNDLED[name].read())
    return {"duplicate_rows": duplicates, "conflicting_texts": conflicting}


def token_lengths(texts: list[str], tokenizer, pair: bool = False) -> np.ndarray:
    """Tokens per text (special tokens included), without truncation."""
    if not texts:
        return np.zeros(0, dtype=int)
    encoded = tokenizer(texts, add_special_tokens=True, truncation=False)["input_ids"]
    return np.asarray([len(ids) for ids in encoded], dtype=int)


def build_card(
    data: TaskData, tokenizer=None, max_length: int | None = None, backbone: str | None = None
) -> dict[str, Any]:
    """The card of a loaded task; token figures when a tokenizer is given."""
    info = data.info
    card: dict[str, Any] = {
        "task": info.name,
        "source": info.source,
        "description": info.description,
        "sizes": {s: len(data.splits[s]) for s in SPLITS},
        "labels": list(info.label_names) if info.label_names else None,
        "content_sha256": content_hash(data),
    }
    if (
        info.label_names
        and "label" in data.splits["train"].column_names
        and not getattr(info, "generative", False)
    ):
        balance = {}
        for split in SPLITS:
            labels = np.asarray(data.splits[split]["label"], dtype=int)
            counts = (
                np.bincount(labels, minlength=len(info.label_names))
                if len(labels)
                else np.zeros(len(info.label_names), dtype=int)
            )
            balance[split] = {n: int(c) for n, c in zip(info.label_names, counts, strict=True)}
        card["class_balance"] = balance
        test = balance["test"]
        top = max(test, key=lambda k: test[k])
        card["majority_baseline"] = {
            "label": top,
            "test_accuracy": test[top] / max(1, sum(test.values())),
        }
    texts = {s: _texts(data, s) for s in SPLITS}
    seen: dict[str, set[str]] = {s: set(texts[s]) for s in SPLITS}
    card["duplicates"] = {
        "within_splits": sum(len(texts[s]) - len(seen[s]) for s in SPLITS),
        "across_splits": len(
            (seen["train"] & seen["dev"])
            | (seen["train"] & seen["test"])
            | (seen["dev"] & seen["test"])
        ),
        "removed_by_loader": _removed_duplicates(info.name),
    }
    if tokenizer is not None:
        lengths = token_lengths(texts["train"], tokenizer)
        if len(lengths):
            edges = [0, 16, 32, 64, 128, 256, 512, 1024, 10**9]
            hist = np.histogram(lengths, bins=edges)[0]
            card["tokens"] = {
                "backbone": backbone,
                "max_length": max_length,
                "mean": float(lengths.mean()),
                "percentiles": {p: int(np.percentile(lengths, p)) for p in (50, 90, 99)},
                "max": int(lengths.max()),
                "histogram": [
                    {"from": a, "to": None if b == 10**9 else b, "count": int(n)}
                    for a, b, n in zip(edges[:-1], edges[1:], hist, strict=True)
                ],
                "truncated_share": float((lengths > max_length).mean()) if max_length else None,
            }
    return card

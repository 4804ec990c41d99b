"""Tokenise a task's splits (no padding) and pad batches dynamically into tensors."""

from __future__ import annotations

from typing import Any

import datasets
import torch
from transformers import DataCollatorWithPadding, PreTrainedTokenizerBase

from .task import LABEL, TEXT, TEXT_PAIR, TaskData

MODEL_KEYS: tuple[str, ...] = ("input_ids", "attention_mask", "token_type_ids")


def tokenize_task(
    data: TaskData, tokenizer: PreTrainedTokenizerBase, max_length: int, task_index: int
) -> datasets.DatasetDict:
    """Columns input_ids, attention_mask[, token_type_ids], labels, task_ids; truncated, unpadded."""
    pair = data.info.is_pair
    label_type = "float32" if data.info.is_regression else "int64"

    def encode(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        enc = tokenizer(
            batch[TEXT],
            batch[TEXT_PAIR] if pair else None,
            truncation=True,
            max_length=max_length,
        )
        out = {k: enc[k] for k in MODEL_KEYS if k in enc}
        out["labels"] = batch[LABEL]
        out["task_ids"] = [task_index] * len(batch[LABEL])
        return out

    splits = data.splits.map(encode, batched=True, remove_columns=data.splits["train"].column_names)
    return splits.cast_column("labels", datasets.Value(label_type)).cast_column(
        "task_ids", datasets.Value("int64")
    )


class MultiTaskCollator:
    """Pads model inputs per batch; adds `labels` (long, or float for regression) and `task_ids`."""

    def __init__(
        self, tokenizer: PreTrainedTokenizerBase, pad_to_multiple_of: int | None = None
    ) -> None:
        self.tokenizer = tokenizer
        self._pad = DataCollatorWithPadding(
            tokenizer, pad_to_multiple_of=pad_to_multiple_of, return_tensors="pt"
        )

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Batch a list of tokenised examples (extra keys are dropped)."""
        inputs = [{k: f[k] for k in MODEL_KEYS if k in f} for f in features]
        batch = dict(self._pad(inputs))
        if "labels" in features[0]:
            is_float = torch.as_tensor(features[0]["labels"]).is_floating_point()
            dtype = torch.float32 if is_float else torch.long
            batch["labels"] = torch.tensor([float(f["labels"]) for f in features], dtype=dtype)
        if "task_ids" in features[0]:
            batch["task_ids"] = torch.tensor(
                [int(f["task_ids"]) for f in features], dtype=torch.long
            )
        return batch

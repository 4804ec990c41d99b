"""Tokenisation (truncated, unpadded) and dynamic padding into tensors."""

from __future__ import annotations

import pandas as pd
import torch

from propetl.data import MultiTaskCollator, TaskData, get_task_info, tokenize_task
from propetl.data.splits import to_dataset_dict


def _task(name: str, rows: list[tuple], pair: bool) -> TaskData:
    cols = ["text", "text_pair", "label"] if pair else ["text", "label"]
    frame = pd.DataFrame(rows, columns=cols)
    info = get_task_info(name)
    splits = to_dataset_dict(
        {s: frame for s in ("train", "dev", "test")}, pair=pair, regression=info.is_regression
    )
    return TaskData(info=info, splits=splits)


def test_tokenize_single_task_truncates_without_padding(tiny_tokenizer) -> None:
    rows = [("the film was good", 1), ("a dull boring movie with a bad plot and a bad cast", 0)]
    out = tokenize_task(_task("sst2", rows, pair=False), tiny_tokenizer, max_length=8, task_index=3)
    train = out["train"]
    assert set(train.column_names) >= {"input_ids", "attention_mask", "labels", "task_ids"}
    assert "text" not in train.column_names and "label" not in train.column_names
    lengths = [len(ids) for ids in train["input_ids"]]
    assert lengths == [6, 8]  # [CLS] 4 words [SEP]; truncated to 8
    assert train["task_ids"] == [3, 3] and train["labels"] == [1, 0]


def test_pair_regression_and_collator_pads_dynamically(tiny_tokenizer) -> None:
    rows = [("the film", "was good", 4.5), ("a question", "or an answer here", 1.25)]
    out = tokenize_task(_task("stsb", rows, pair=True), tiny_tokenizer, max_length=32, task_index=0)
    feats = [out["train"][i] for i in range(2)]
    assert feats[0]["input_ids"].count(tiny_tokenizer.sep_token_id) == 2
    batch = MultiTaskCollator(tiny_tokenizer)(feats)
    longest = max(len(f["input_ids"]) for f in feats)
    assert batch["input_ids"].shape == (2, longest)
    assert batch["attention_mask"].sum().item() == sum(len(f["input_ids"]) for f in feats)
    assert batch["labels"].dtype == torch.float32
    assert torch.allclose(batch["labels"], torch.tensor([4.5, 1.25]))
    assert batch["task_ids"].dtype == torch.long and batch["task_ids"].tolist() == [0, 0]


def test_collator_classification_labels_are_long(tiny_tokenizer) -> None:
    rows = [("good", 1), ("the film was good and great", 0), ("bad", 1)]
    out = tokenize_task(
        _task("sst2", rows, pair=False), tiny_tokenizer, max_length=64, task_index=1
    )
    feats = [dict(out["dev"][i], text="dropped") for i in range(3)]
    batch = MultiTaskCollator(tiny_tokenizer)(feats)
    assert batch["labels"].dtype == torch.long and batch["labels"].tolist() == [1, 0, 1]
    assert batch["input_ids"].shape[1] == 8
    assert (batch["input_ids"][0, 3:] == tiny_tokenizer.pad_token_id).all()
    assert "text" not in batch

"""Tokenise tasks for a generative backbone (teacher forcing) and pad their batches.

The model input is the source followed by the task's prompt ("<source>\\n<prompt>"). An
encoder-decoder reads it and is trained on the target ids. A decoder-only model reads input +
" " + target + EOS and is trained on the target tokens only (labels -100 on the input and on
padding). A classification task is answered as text: its target is the label's name.
"""

from __future__ import annotations

from typing import Any

import datasets
import torch
from transformers import PreTrainedTokenizerBase

from .task import LABEL, TARGET, TEXT, TEXT_PAIR, TaskData

IGNORE_INDEX = -100
REFERENCE = "reference"  # the target text, kept for generation metrics
GOLD = "gold"  # a classification task's label id (-1 for text targets)


def model_input(text: str, pair: str | None, prompt: str) -> str:
    source = text if pair is None else f"{text}\n{pair}"
    return f"{source}\n{prompt}" if prompt else source


def task_prompt(data: TaskData) -> str:
    if data.info.generative:
        return data.info.prompt
    if data.info.label_names is None:
        raise ValueError(
            f"task {data.info.name!r} is a regression task; a generative backbone "
            "answers text-to-text and classification tasks only"
        )
    return "Answer (" + ", ".join(data.info.label_names) + "):"


def tokenize_text2text(
    data: TaskData,
    tokenizer: PreTrainedTokenizerBase,
    max_length: int,
    max_target_length: int,
    task_index: int,
    causal: bool,
) -> datasets.DatasetDict:
    """Columns input_ids, labels, prompt_length, task_ids, reference, gold; unpadded."""
    prompt = task_prompt(data)
    info = data.info
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ValueError("the tokenizer has no end-of-sequence token")

    def encode(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        pairs = batch.get(TEXT_PAIR) or [None] * len(batch[TEXT])
        if info.generative:
            targets = batch[TARGET]
            gold = [-1] * len(targets)
        else:
            assert info.label_names is not None
            gold = [int(v) for v in batch[LABEL]]
            targets = [info.label_names[v] for v in gold]
        out: dict[str, list[Any]] = {"input_ids": [], "labels": [], "prompt_length": []}
        for text, pair, target in zip(batch[TEXT], pairs, targets, strict=True):
            if causal:
                # truncate the source, never the prompt, so the model always sees the question
                source = tokenizer(
                    model_input(text, pair, ""),
                    add_special_tokens=False,
                    truncation=True,
                    max_length=max_length,
                )["input_ids"]
                asked = tokenizer("\n" + prompt, add_special_tokens=False)["input_ids"]
                answer = tokenizer(
                    " " + target,
                    add_special_tokens=False,
                    truncation=True,
                    max_length=max_target_length - 1,
                )["input_ids"] + [eos]
                head = source + asked
                out["input_ids"].append(head + answer)
                out["labels"].append([IGNORE_INDEX] * len(head) + answer)
                out["prompt_length"].append(len(head))
            else:
                ids = tokenizer(
                    model_input(text, pair, prompt), truncation=True, max_length=max_length
                )["input_ids"]
                labels = tokenizer(
                    text_target=target, truncation=True, max_length=max_target_length
                )["input_ids"]
                out["input_ids"].append(ids)
                out["labels"].append(labels)
                out["prompt_length"].append(len(ids))
        out["task_ids"] = [task_index] * len(targets)
        out[REFERENCE] = list(targets)
        out[GOLD] = gold
        return out

    return data.splits.map(encode, batched=True, remove_columns=data.splits["train"].column_names)


def pad_rows(rows: list[list[int]], value: int, left: bool) -> torch.Tensor:
    width = max(len(r) for r in rows)
    padded = [
        ([value] * (width - len(r)) + r) if left else (r + [value] * (width - len(r))) for r in rows
    ]
    return torch.tensor(padded, dtype=torch.long)


class Text2TextCollator:
    """Training batches: input_ids / attention_mask / labels / task_ids, padded on the right.
    `prompts()`: the inputs generation starts from (decoder-only: padded on the left)."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, causal: bool) -> None:
        self.tokenizer, self.causal = tokenizer, causal
        pad = tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else tokenizer.eos_token_id

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        ids = [list(f["input_ids"]) for f in features]
        batch = {
            "input_ids": pad_rows(ids, self.pad_id, left=False),
            "attention_mask": pad_rows([[1] * len(r) for r in ids], 0, left=False),
            "labels": pad_rows([list(f["labels"]) for f in features], IGNORE_INDEX, left=False),
        }
        if "task_ids" in features[0]:
            batch["task_ids"] = torch.tensor([int(f["task_ids"]) for f in features])
        return batch

    def prompts(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        ids = [list(f["input_ids"])[: int(f["prompt_length"])] for f in features]
        left = self.causal
        return {
            "input_ids": pad_rows(ids, self.pad_id, left=left),
            "attention_mask": pad_rows([[1] * len(r) for r in ids], 0, left=left),
        }

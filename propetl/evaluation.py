"""Evaluate a ProPETL model on one task's tokenised split."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader

from .data import TaskInfo, compute_metrics


@torch.no_grad()
def predict_split(
    model, dataset, collator, task: str, batch_size: int = 64, device: torch.device | str = "cpu"
) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels of every example of `dataset` (all of one task)."""
    was_training = model.training
    model.eval()
    logits, labels = [], []
    try:
        for batch in DataLoader(dataset, batch_size=batch_size, collate_fn=collator):
            batch = {k: v.to(device) for k, v in batch.items()}
            gold = batch.pop("labels")
            batch.pop("task_ids", None)
            out = model(**batch, task=task).logits
            logits.append(out.float().cpu().numpy())
            labels.append(gold.cpu().numpy())
    finally:
        model.train(was_training)
    return np.concatenate(logits), np.concatenate(labels)


def evaluate_task(
    model,
    dataset,
    collator,
    info: TaskInfo,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
) -> dict[str, float]:
    logits, labels = predict_split(model, dataset, collator, info.name, batch_size, device)
    predictions = logits[:, 0] if info.is_regression else logits
    return compute_metrics(info, predictions, labels)


@torch.no_grad()
def generate_split(
    model,
    dataset,
    collator,
    task: str,
    tokenizer,
    batch_size: int = 16,
    device: torch.device | str = "cpu",
    num_beams: int = 1,
    max_new_tokens: int = 64,
) -> list[str]:
    """Generated text of every example of `dataset` (all of one task), greedy or beam search."""
    was_training = model.training
    model.eval()
    texts: list[str] = []
    try:
        for start in range(0, len(dataset), batch_size):
            rows = dataset.select(range(start, min(start + batch_size, len(dataset))))
            inputs = {k: v.to(device) for k, v in collator.prompts(list(rows)).items()}
            out = model.generate(
                **inputs,
                task=task,
                num_beams=num_beams,
                do_sample=False,
                max_new_tokens=max_new_tokens,
            )
            texts += [t.strip() for t in tokenizer.batch_decode(out, skip_special_tokens=True)]
    finally:
        model.train(was_training)
    return texts


def evaluate_generative(
    model,
    dataset,
    collator,
    info: TaskInfo,
    tokenizer,
    batch_size: int = 16,
    device: torch.device | str = "cpu",
    num_beams: int = 1,
    max_new_tokens: int = 64,
) -> dict[str, float]:
    """Generate for every example and score the texts (ROUGE / BLEU, or the class named)."""
    from .data.text2text_collate import GOLD, REFERENCE
    from .data.text_metrics import generation_metrics

    texts = generate_split(
        model,
        dataset,
        collator,
        info.name,
        tokenizer,
        batch_size,
        device,
        num_beams,
        max_new_tokens,
    )
    return generation_metrics(info, texts, dataset[REFERENCE], dataset[GOLD])

"""Evaluate a ProPETL model on one task's tokenised split."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader

from .data import TaskInfo, compute_metrics


@torch.no_grad()
def predict_split(model, dataset, collator, task: str, batch_size: int = 64,
                  device: torch.device | str = "cpu") -> tuple[np.ndarray, np.ndarray]:
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


def evaluate_task(model, dataset, collator, info: TaskInfo, batch_size: int = 64,
                  device: torch.device | str = "cpu") -> dict[str, float]:
    logits, labels = predict_split(model, dataset, collator, info.name, batch_size, device)
    predictions = logits[:, 0] if info.is_regression else logits
    return compute_metrics(info, predictions, labels)

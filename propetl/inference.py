"""Serving many tasks from one loaded prototype: materialise once, swap masks per request."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .model import ProPETLModel

Pair = tuple[str, str | None]


@dataclass
class Timing:
    swap_ms: float
    inference_ms: float


class Predictor:
    """Label texts for any task of a ProPETL model; all tasks share one backbone and prototype."""

    def __init__(self, model: ProPETLModel, tokenizer, max_length: int = 128) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.model.materialise()
        self.last_timing = Timing(0.0, 0.0)

    @property
    def tasks(self) -> list[str]:
        return self.model.task_names

    def _encode(self, pairs: Sequence[Pair]) -> dict[str, torch.Tensor]:
        if not pairs:
            raise ValueError("nothing to predict: give at least one text")
        first = [p[0] for p in pairs]
        second = [p[1] for p in pairs]
        has_pair = [s is not None for s in second]
        if any(has_pair) and not all(has_pair):
            raise ValueError("give a text pair for every example or for none")
        device = next(self.model.backbone.parameters()).device
        encoded = self.tokenizer(first, second if all(has_pair) else None, truncation=True,
                                 max_length=self.max_length, padding=True, return_tensors="pt")
        return {k: v.to(device) for k, v in encoded.items()}

    def _describe(self, task: str, logits: torch.Tensor) -> dict:
        spec = self.model.task_specs[task]
        if spec.is_regression:
            return {"task": task, "label": None, "value": float(logits[0]), "scores": {}}
        probs = torch.softmax(logits[: spec.num_labels].float(), dim=-1).tolist()
        names = list(spec.label_names or [str(i) for i in range(spec.num_labels)])
        best = max(range(len(probs)), key=probs.__getitem__)
        return {"task": task, "label": names[best], "scores": dict(zip(names, probs, strict=True))}

    @torch.no_grad()
    def predict(self, task: str, pairs: Sequence[Pair]) -> list[dict]:
        """One task for a batch of texts; switching task swaps the materialised masks."""
        started = time.perf_counter()
        self.model.set_task(task)
        swapped = time.perf_counter()
        logits = self.model(**self._encode(pairs)).logits
        done = time.perf_counter()
        self.last_timing = Timing((swapped - started) * 1e3, (done - swapped) * 1e3)
        return [self._describe(task, row) for row in logits]

    @torch.no_grad()
    def predict_mixed(self, requests: Sequence[tuple[str, Pair]]) -> list[dict]:
        """One batch whose examples each name their task (per-request task switching)."""
        unknown = sorted({t for t, _ in requests} - set(self.tasks))
        if unknown:
            raise KeyError(f"unknown task(s) {unknown}; this model has: {', '.join(self.tasks)}")
        started = time.perf_counter()
        inputs = self._encode([pair for _, pair in requests])
        task_ids = torch.tensor([self.model.task_index(t) for t, _ in requests],
                                device=inputs["input_ids"].device)
        logits = self.model(**inputs, task_ids=task_ids).logits
        self.last_timing = Timing(0.0, (time.perf_counter() - started) * 1e3)
        return [self._describe(task, row) for (task, _), row in zip(requests, logits, strict=True)]

    def predict_all_tasks(self, pair: Pair) -> list[dict]:
        """Every task's answer for one text, as one mixed batch."""
        return self.predict_mixed([(task, pair) for task in self.tasks])

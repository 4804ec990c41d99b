"""Serving many tasks from one loaded prototype: materialise once, swap masks per request."""

from __future__ import annotations

import threading
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


def first_cached_tasks(model: ProPETLModel) -> list[str]:
    """The tasks to materialise up front: all of them, or as many as the banks' bounded
    caches keep (the others are materialised from their packed masks when a batch needs them)."""
    limits = [b.cache_limit for b in model.banks.values() if b.cache_limit is not None]
    return model.task_names[: min(limits)] if limits else model.task_names


class Predictor:
    """Label texts for any task of a ProPETL model; all tasks share one backbone and prototype."""

    def __init__(self, model: ProPETLModel, tokenizer, max_length: int = 128) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.model.materialise(first_cached_tasks(model))
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
        encoded = self.tokenizer(
            first,
            second if all(has_pair) else None,
            truncation=True,
            max_length=self.max_length,
            padding=True,
            return_tensors="pt",
        )
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
        task_ids = torch.tensor(
            [self.model.task_index(t) for t, _ in requests], device=inputs["input_ids"].device
        )
        logits = self.model(**inputs, task_ids=task_ids).logits
        self.last_timing = Timing(0.0, (time.perf_counter() - started) * 1e3)
        return [self._describe(task, row) for (task, _), row in zip(requests, logits, strict=True)]

    def predict_all_tasks(self, pair: Pair) -> list[dict]:
        """Every task's answer for one text, as one mixed batch."""
        return self.predict_mixed([(task, pair) for task in self.tasks])


@dataclass
class Chunk:
    """Text generated so far while streaming, and the speed of the generation."""

    text: str
    tokens: int
    tokens_per_second: float
    done: bool = False


class Generator:
    """Generate text for any task of a generative ProPETL model (T5 or Llama family).

    The input is built as in training: the text, then the task's prompt (a text-to-text
    catalog task's, or the label names of a classification task answered as text)."""

    def __init__(
        self, model: ProPETLModel, tokenizer, max_length: int = 256, max_new_tokens: int = 48
    ) -> None:
        if not model.family.generative:
            raise ValueError(f"backbone family {model.family.name!r} does not generate text")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_length, self.max_new_tokens = max_length, max_new_tokens
        self.causal = model.family.kind == "causal"
        self._lock = threading.Lock()  # one generation at a time: layers share routing state
        self.model.materialise()
        self.last_timing = Timing(0.0, 0.0)

    @property
    def tasks(self) -> list[str]:
        return self.model.task_names

    def prompt(self, task: str) -> str:
        spec = self.model.task_specs[task]
        if spec.label_names:
            return "Answer (" + ", ".join(spec.label_names) + "):"
        from .data import get_task_info

        try:
            return get_task_info(task).prompt
        except (KeyError, ValueError):
            return ""

    def _encode(self, task: str, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        from .data.text2text_collate import model_input, pad_rows

        if not texts or not all(t and t.strip() for t in texts):
            raise ValueError("nothing to generate from: give a non-empty text")
        self.model._check_task(task)
        prompt = self.prompt(task)
        rows = []
        for text in texts:
            if self.causal:
                ids = self.tokenizer(
                    text, add_special_tokens=False, truncation=True, max_length=self.max_length
                )["input_ids"]
                ids += self.tokenizer("\n" + prompt, add_special_tokens=False)["input_ids"]
            else:
                ids = self.tokenizer(
                    model_input(text, None, prompt), truncation=True, max_length=self.max_length
                )["input_ids"]
            rows.append(ids)
        pad = self.tokenizer.pad_token_id
        pad = pad if pad is not None else self.tokenizer.eos_token_id
        device = next(self.model.backbone.parameters()).device
        return {
            "input_ids": pad_rows(rows, pad, left=self.causal).to(device),
            "attention_mask": pad_rows([[1] * len(r) for r in rows], 0, left=self.causal).to(
                device
            ),
        }

    @torch.no_grad()
    def generate(
        self, task: str, texts: Sequence[str], num_beams: int = 1, max_new_tokens: int | None = None
    ) -> list[dict]:
        """Generated text per input (greedy, or beam search with `num_beams` > 1)."""
        inputs = self._encode(task, texts)
        started = time.perf_counter()
        with self._lock:
            out = self.model.generate(
                **inputs,
                task=task,
                num_beams=num_beams,
                do_sample=False,
                max_new_tokens=max_new_tokens or self.max_new_tokens,
            )
        self.last_timing = Timing(0.0, (time.perf_counter() - started) * 1e3)
        decoded = self.tokenizer.batch_decode(out, skip_special_tokens=True)
        return [{"task": task, "label": None, "text": text.strip()} for text in decoded]

    def stream(self, task: str, text: str, max_new_tokens: int | None = None):
        """Yield a `Chunk` per generated piece of text (greedy), then a final one with done."""
        from transformers import TextIteratorStreamer

        inputs = self._encode(task, [text])
        streamer = TextIteratorStreamer(
            self.tokenizer, skip_prompt=self.causal, skip_special_tokens=True, timeout=120.0
        )
        counted = _TokenCount()
        options = {
            "task": task,
            "do_sample": False,
            "streamer": streamer,
            "max_new_tokens": max_new_tokens or self.max_new_tokens,
            "logits_processor": [counted],
        }
        errors: list[BaseException] = []

        def run() -> None:
            try:
                with self._lock:
                    self.model.generate(**inputs, **options)
            except BaseException as err:  # handed to the consumer below
                errors.append(err)
                streamer.end()

        worker = threading.Thread(target=run, daemon=True)
        started = time.perf_counter()
        worker.start()
        pieces: list[str] = []
        for piece in streamer:
            pieces.append(piece)
            elapsed = max(time.perf_counter() - started, 1e-6)
            yield Chunk("".join(pieces).strip(), counted.tokens, counted.tokens / elapsed)
        worker.join()
        if errors:
            raise errors[0]
        elapsed = max(time.perf_counter() - started, 1e-6)
        self.last_timing = Timing(0.0, elapsed * 1e3)
        yield Chunk("".join(pieces).strip(), counted.tokens, counted.tokens / elapsed, done=True)


class _TokenCount:
    """A logits processor that only counts generation steps (one token per step)."""

    def __init__(self) -> None:
        self.tokens = 0

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        self.tokens += 1
        return scores

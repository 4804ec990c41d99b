"""Metrics of generated text, by the maintained libraries: ROUGE (`rouge-score`), BLEU
(`sacrebleu`). Values are fractions, like every other metric of the project."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .metrics import compute_metrics
from .task import TaskInfo

ROUGE = ("rouge1", "rouge2", "rougeL")


def rouge(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Mean ROUGE-1/2/L F-measures (Porter stemming, as the summarisation papers report)."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(list(ROUGE), use_stemmer=True)
    totals = dict.fromkeys(ROUGE, 0.0)
    for prediction, reference in zip(predictions, references, strict=True):
        for name, score in scorer.score(reference, prediction).items():
            totals[name] += score.fmeasure
    count = max(len(predictions), 1)
    return {name: value / count for name, value in totals.items()}


def bleu(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU (sacrebleu's default 13a tokenisation) as a fraction."""
    import sacrebleu

    return sacrebleu.corpus_bleu(list(predictions), [list(references)]).score / 100.0


def label_of(text: str, label_names: Sequence[str]) -> int:
    """The class a generated answer names (case and surrounding space ignored), else -1."""
    answer = text.strip().lower()
    for index, name in enumerate(label_names):
        if answer == name.lower():
            return index
    return -1


def generation_metrics(
    info: TaskInfo,
    predictions: Sequence[str],
    references: Sequence[str],
    labels: Sequence[int] | None = None,
) -> dict[str, float]:
    """The task's metrics for generated texts, and "main".

    A classification task answered as text scores the class its answer names; an answer that
    names no class counts as wrong (as a class no example has)."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    if not info.generative:
        assert info.label_names is not None and labels is not None
        names = info.label_names
        predicted = np.array([label_of(p, names) for p in predictions])
        gold = np.asarray(labels)
        # a non-answer is scored as some other class than the gold one
        predicted = np.where(predicted < 0, (gold + 1) % len(names), predicted)
        return compute_metrics(info, predicted, gold)
    out: dict[str, float] = {}
    if any(m in ROUGE for m in info.metrics):
        scores = rouge(predictions, references)
        out.update({m: scores[m] for m in info.metrics if m in ROUGE})
    if "bleu" in info.metrics:
        out["bleu"] = bleu(predictions, references)
    out["main"] = out[info.main_metric]
    return out

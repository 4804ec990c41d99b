"""Task metrics from model outputs (scikit-learn / scipy); values are fractions."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from .task import TaskInfo

Metric = Callable[[np.ndarray, np.ndarray], float]


def _correlation(fn: Callable[..., object]) -> Metric:
    def metric(pred: np.ndarray, gold: np.ndarray) -> float:
        if len(pred) < 2 or np.ptp(pred) == 0 or np.ptp(gold) == 0:
            return 0.0  # undefined for constant inputs; 0 keeps checkpoint selection sane
        value = float(fn(pred, gold)[0])  # type: ignore[index]
        return 0.0 if math.isnan(value) else value

    return metric


METRICS: dict[str, Metric] = {
    "accuracy": lambda p, g: float(accuracy_score(g, p)),
    "f1": lambda p, g: float(f1_score(g, p, zero_division=0)),
    "macro_f1": lambda p, g: float(f1_score(g, p, average="macro", zero_division=0)),
    "matthews": lambda p, g: float(matthews_corrcoef(g, p)),
    "pearson": _correlation(pearsonr),
    "spearman": _correlation(spearmanr),
}


def predicted_values(info: TaskInfo, predictions: np.ndarray) -> np.ndarray:
    """Class ids (argmax of logits [N, C]) or regression values ([N] or [N, 1])."""
    pred = np.asarray(predictions)
    if info.is_regression:
        return pred.reshape(len(pred), -1)[:, 0].astype(float)
    return pred.argmax(axis=-1) if pred.ndim == 2 else pred.astype(int)


def compute_metrics(
    info: TaskInfo, predictions: np.ndarray, labels: np.ndarray
) -> dict[str, float]:
    """Every metric of `info`, "combined" (mean) when there are two, and "main"."""
    pred = predicted_values(info, predictions)
    gold = np.asarray(labels).reshape(-1)
    gold = gold.astype(float) if info.is_regression else gold.astype(int)
    if len(pred) != len(gold):
        raise ValueError(f"{len(pred)} predictions for {len(gold)} labels")
    out = {name: METRICS[name](pred, gold) for name in info.metrics}
    if len(info.metrics) == 2:
        out["combined"] = (out[info.metrics[0]] + out[info.metrics[1]]) / 2
    out["main"] = out[info.main_metric]
    return out

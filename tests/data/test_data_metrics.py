"""Metrics against cases small enough to compute by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from propetl.data import compute_metrics, get_task_info


def _logits(classes: list[int], n_classes: int = 2) -> np.ndarray:
    return np.eye(n_classes)[classes] * 3.0 - 1.0


def test_accuracy_from_logits() -> None:
    out = compute_metrics(get_task_info("sst2"), _logits([1, 0, 1, 1]), np.array([1, 0, 0, 1]))
    assert out == {"accuracy": 0.75, "main": 0.75}


def test_accuracy_and_f1_combined() -> None:
    # tp=2 fp=1 fn=1 -> precision 2/3, recall 2/3, f1 2/3; accuracy 3/5
    preds, gold = [1, 1, 1, 0, 0], [1, 1, 0, 1, 0]
    out = compute_metrics(get_task_info("mrpc"), _logits(preds), np.array(gold))
    assert out["accuracy"] == pytest.approx(0.6)
    assert out["f1"] == pytest.approx(2 / 3)
    assert out["combined"] == pytest.approx((0.6 + 2 / 3) / 2)
    assert out["main"] == out["combined"]


def test_matthews() -> None:
    # tp=1 tn=1 fp=1 fn=1 -> mcc = (1 - 1) / ... = 0; perfect -> 1; inverted -> -1
    info = get_task_info("cola")
    assert compute_metrics(info, _logits([1, 0, 1, 0]), np.array([1, 0, 0, 1]))["main"] == 0.0
    assert compute_metrics(info, _logits([1, 0, 1]), np.array([1, 0, 1]))["matthews"] == 1.0
    assert compute_metrics(info, _logits([0, 1]), np.array([1, 0]))["matthews"] == -1.0


def test_pearson_spearman_for_regression() -> None:
    info = get_task_info("stsb")
    gold = np.array([1.0, 2.0, 3.0, 4.0])
    out = compute_metrics(info, np.array([[2.0], [4.0], [6.0], [8.0]]), gold)
    assert out["pearson"] == pytest.approx(1.0) and out["spearman"] == pytest.approx(1.0)
    # monotone but not linear: spearman 1, pearson < 1
    out = compute_metrics(info, np.array([1.0, 2.0, 3.0, 100.0]), gold)
    assert out["spearman"] == pytest.approx(1.0) and out["pearson"] < 0.9
    assert out["main"] == pytest.approx((out["pearson"] + out["spearman"]) / 2)


def test_constant_regression_predictions_give_zero_not_nan() -> None:
    out = compute_metrics(get_task_info("stsb"), np.zeros(4), np.array([1.0, 2.0, 3.0, 4.0]))
    assert out["pearson"] == 0.0 and not math.isnan(out["main"])


def test_macro_f1_for_bundled_multiclass() -> None:
    info = get_task_info("tweet_sentiment")
    out = compute_metrics(info, _logits([0, 1, 2, 2], 3), np.array([0, 1, 2, 1]))
    # per class f1: 1, 2/3, 2/3 -> macro 7/9
    assert out["macro_f1"] == pytest.approx(7 / 9)
    assert out["main"] == out["accuracy"] == 0.75


def test_length_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="3 predictions for 2 labels"):
        compute_metrics(get_task_info("sst2"), _logits([0, 1, 1]), np.array([0, 1]))

"""Mask statistics: each task's distance from the masks it started from (Masks tab)."""

from __future__ import annotations

import torch

from app import maskstats as S
from propetl.config import TaskHeadSpec
from tests.core.helpers import build


def test_distance_from_the_common_start_measures_training_only():
    model = build(tasks=(TaskHeadSpec("a", 2), TaskHeadSpec("b", 3)))
    stack = S.mask_stacks(model)["adapter.down"]
    assert S.start_distance(stack) == {"a": 0.0, "b": 0.0}  # untrained: at the start
    assert S.task_matrix(stack, "hamming")[0, 1] == 0.0  # and both at the same start
    with torch.no_grad():  # "train" task a only: flip the order of its scores in layer 0
        scores = model.banks["adapter"].tasks["a"].scores["down"]
        scores[0] = -scores[0].abs().flip(-1)
    stack = S.mask_stacks(model)["adapter.down"]
    moved = S.start_distance(stack)
    assert moved["a"] > 0.05 and moved["b"] == 0.0
    assert S.start_distance(stack, layer=1)["a"] == 0.0  # layer 1 untouched
    own = build(tasks=(TaskHeadSpec("a", 2), TaskHeadSpec("b", 3)), mask_init="per-task")
    stack = S.mask_stacks(own)["adapter.down"]
    assert S.start_distance(stack) == {"a": 0.0, "b": 0.0}  # each from its own start
    assert S.task_matrix(stack, "hamming")[0, 1] > 0.2

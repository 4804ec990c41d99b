"""Fidelity to the public ProPETL code (ChaosCodes/ProPETL): mask score initialisation."""

import math

import pytest

from .helpers import build


def _bound(fan_in: int) -> float:
    """Kaiming-uniform with a = sqrt(5) draws from U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    return 1.0 / math.sqrt(fan_in)


def _check_spread(scores, fan_in: int) -> None:
    bound = _bound(fan_in)
    top = scores.detach().abs().max().item()
    assert top <= bound + 1e-7, f"scores reach {top:.4g}, public code's bound is {bound:.4g}"
    assert top > 0.9 * bound, f"scores only reach {top:.4g}, public code's bound is {bound:.4g}"


@pytest.mark.parametrize("sharing", ["propetl", "propetl-or"])
def test_prefix_scores_are_drawn_as_one_layers_by_length_by_2d_block(sharing):
    # public code: nn.Parameter([n_layers, prefix_length, 2 * d]), kaiming fan-in P * 2d
    model = build(petl="prefix", sharing=sharing, prefix_len=16)
    scores = model.banks["prefix"].tasks["a"].scores["kv"]
    _check_spread(scores, 16 * 2 * model.hidden_size)


def test_adapter_scores_use_the_public_codes_transposed_fan_ins():
    # public code: down_mask [d, b] (fan-in b), up_mask [b, d] (fan-in d)
    model = build(petl="adapter", bottleneck=4)
    scores = model.banks["adapter"].tasks["a"].scores
    _check_spread(scores["down"], 4)
    _check_spread(scores["up"], model.hidden_size)


def test_lora_scores_use_a_and_b_shapes():
    model = build(petl="lora", lora_r=4)
    scores = model.banks["lora_query"].tasks["a"].scores
    _check_spread(scores["A"], model.hidden_size)
    _check_spread(scores["B"], 4)

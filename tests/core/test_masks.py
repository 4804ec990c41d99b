import math

import pytest
import torch

from propetl.masks import (
    density,
    hamming,
    init_scores,
    jaccard,
    kept_count,
    neuron_keep_rates,
    pack_bits,
    pairwise,
    random_hamming_baseline,
    topk_mask,
    unpack_bits,
)


@pytest.mark.parametrize("keep", [0.01, 0.1, 0.3, 0.5, 0.77, 1.0])
@pytest.mark.parametrize("shape", [(3, 8, 32), (2, 17, 5), (4, 7, 10)])
def test_kept_count_is_exact_per_layer(keep, shape):
    mask = topk_mask(init_scores(shape), keep)
    per_row = math.prod(shape[1:])
    assert torch.all(mask.reshape(shape[0], -1).sum(1) == math.ceil(keep * per_row))
    assert set(mask.unique().tolist()) <= {0.0, 1.0}


def test_mask_keeps_the_largest_magnitudes():
    scores = torch.tensor([[[0.1, -5.0, 0.3, 2.0]]])
    assert topk_mask(scores, 0.5).tolist() == [[[0.0, 1.0, 0.0, 1.0]]]


def test_straight_through_gradient_is_sign_times_upstream():
    scores = torch.tensor([[[0.5, -2.0, 1.0, -0.1]]], requires_grad=True)
    weights = torch.tensor([[[1.0, 2.0, 3.0, 4.0]]])
    (topk_mask(scores, 0.5) * weights).sum().backward()
    assert scores.grad.tolist() == [[[1.0, -2.0, 3.0, -4.0]]]


def test_layers_start_from_different_masks():
    mask = topk_mask(init_scores((4, 16, 16)), 0.5)
    assert hamming(mask[0], mask[1]) > 0.2


def test_kept_count_bounds():
    assert kept_count(10, 0.0001) == 1
    assert kept_count(10, 1.0) == 10
    assert kept_count(10, 0.3) == 3


@pytest.mark.parametrize("shape", [(1,), (7,), (3, 5, 9), (6, 64, 384)])
def test_pack_unpack_round_trip(shape):
    mask = (torch.rand(shape) > 0.5).float()
    packed = pack_bits(mask)
    assert packed.dtype == torch.uint8
    assert packed.numel() == math.ceil(mask.numel() / 8)
    assert torch.equal(unpack_bits(packed, shape), mask)


def test_unpack_refuses_a_wrong_size():
    with pytest.raises(ValueError, match="expected"):
        unpack_bits(torch.zeros(3, dtype=torch.uint8), (5, 5))


def test_statistics_on_known_masks():
    a = torch.tensor([1.0, 1.0, 0.0, 0.0])
    b = torch.tensor([1.0, 0.0, 1.0, 0.0])
    assert hamming(a, b) == 0.5
    assert jaccard(a, b) == pytest.approx(1 / 3)
    assert jaccard(torch.zeros(4), torch.zeros(4)) == 1.0
    stack = torch.stack([a, b, a])
    assert pairwise(stack, "hamming")[0, 1] == pytest.approx(0.5)
    assert pairwise(stack, "hamming")[0, 2] == 0.0
    assert pairwise(stack, "jaccard")[0, 1] == pytest.approx(1 / 3)
    assert density(stack).tolist() == [0.5, 0.5, 0.5]
    rows, cols = neuron_keep_rates(torch.tensor([[1.0, 1.0], [0.0, 1.0]]))
    assert rows.tolist() == [1.0, 0.5] and cols.tolist() == [0.5, 1.0]


def test_random_masks_match_the_hamming_baseline():
    keep = 0.3
    masks = topk_mask(init_scores((2, 200, 200)), keep)
    assert hamming(masks[0], masks[1]) == pytest.approx(random_hamming_baseline(keep), abs=0.01)

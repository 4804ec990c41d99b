"""The multi-task batch sampler: one task per batch, seeded, the right task frequencies."""

from __future__ import annotations

import math

import numpy as np
import pytest

from propetl.data import MultiTaskBatchSampler, task_sampling_probs

SIZES = [100, 37, 1000]


def _task_of(index: int, sizes: list[int]) -> int:
    return int(np.searchsorted(np.cumsum(sizes), index, side="right"))


def test_probabilities_follow_the_formulas() -> None:
    temp = task_sampling_probs(SIZES, "temperature", 10.0)
    weights = [n ** (1 / 10) for n in SIZES]
    assert temp == pytest.approx([w / sum(weights) for w in weights])
    assert task_sampling_probs(SIZES, "proportional") == pytest.approx([n / 1137 for n in SIZES])
    assert task_sampling_probs(SIZES, "uniform") == pytest.approx([1 / 3] * 3)
    with pytest.raises(ValueError):
        task_sampling_probs(SIZES, "random")


@pytest.mark.parametrize("strategy", ["temperature", "proportional", "uniform"])
def test_every_batch_holds_one_task(strategy: str) -> None:
    sampler = MultiTaskBatchSampler(SIZES, 16, strategy=strategy, seed=1)
    batches = list(sampler)
    assert len(batches) == len(sampler) == sum(math.ceil(n / 16) for n in SIZES)
    for batch in batches:
        assert 1 <= len(batch) <= 16 and len(set(batch)) == len(batch)
        assert len({_task_of(i, SIZES) for i in batch}) == 1


def test_proportional_covers_every_index_exactly_once() -> None:
    batches = list(MultiTaskBatchSampler(SIZES, 16, strategy="proportional", seed=5))
    seen = sorted(i for b in batches for i in b)
    assert seen == list(range(sum(SIZES)))


def test_uniform_with_equal_sizes_covers_every_index() -> None:
    sizes = [64, 64, 64]
    seen = sorted(i for b in MultiTaskBatchSampler(sizes, 8, strategy="uniform") for i in b)
    assert seen == list(range(192))


def test_drop_last_gives_full_batches_only() -> None:
    sampler = MultiTaskBatchSampler(SIZES, 16, strategy="proportional", drop_last=True)
    batches = list(sampler)
    assert len(batches) == len(sampler) == sum(n // 16 for n in SIZES)
    assert all(len(b) == 16 for b in batches)


def test_deterministic_per_seed_and_epoch() -> None:
    a = MultiTaskBatchSampler(SIZES, 8, seed=3)
    b = MultiTaskBatchSampler(SIZES, 8, seed=3)
    first = list(a)
    assert first == list(b) == list(a)
    a.set_epoch(1)
    assert list(a) != first
    b.set_epoch(1)
    assert list(a) == list(b)
    assert list(MultiTaskBatchSampler(SIZES, 8, seed=4)) != first


def test_resume_by_skipping_batches() -> None:
    sampler = MultiTaskBatchSampler(SIZES, 8, seed=9, num_batches=50)
    sampler.set_epoch(2)
    full = list(sampler)
    resumed = MultiTaskBatchSampler(SIZES, 8, seed=9, num_batches=50)
    resumed.set_epoch(2)
    assert list(resumed)[20:] == full[20:]
    assert len(full) == 50


def test_empirical_frequencies_match_probabilities() -> None:
    sampler = MultiTaskBatchSampler(SIZES, 4, strategy="temperature", num_batches=3000, seed=0)
    counts = np.bincount([_task_of(b[0], SIZES) for b in sampler], minlength=3)
    probs = np.array(task_sampling_probs(SIZES, "temperature", 10.0))
    assert np.abs(counts / counts.sum() - probs).max() < 0.01


def test_small_task_reshuffles_when_exhausted() -> None:
    sizes = [5, 500]
    batches = list(MultiTaskBatchSampler(sizes, 4, strategy="uniform", num_batches=40, seed=2))
    small = [i for b in batches if b[0] < 5 for i in b]
    assert set(small) == set(range(5)) and len(small) > 5


def test_works_with_a_torch_dataloader() -> None:
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    data = TensorDataset(torch.arange(sum(SIZES)))
    loader = DataLoader(data, batch_sampler=MultiTaskBatchSampler(SIZES, 32, seed=0))
    batches = [b[0] for b in loader]
    assert len(batches) == len(loader.batch_sampler)

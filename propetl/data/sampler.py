"""Batches drawn one task at a time, with temperature / proportional / uniform task sampling."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler

STRATEGIES: tuple[str, ...] = ("temperature", "proportional", "uniform")


def task_sampling_probs(
    sizes: list[int], strategy: str = "temperature", temperature: float = 10.0
) -> list[float]:
    """P(task i) ∝ size_i ** (1/T) ("temperature"), size_i ("proportional") or 1 ("uniform")."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    if not sizes or min(sizes) <= 0:
        raise ValueError(f"every task needs at least one example, got sizes {sizes}")
    if temperature <= 0:
        raise ValueError("temperature must be positive")
    exponent = {"temperature": 1.0 / temperature, "proportional": 1.0, "uniform": 0.0}[strategy]
    weights = np.asarray(sizes, dtype=float) ** exponent
    return (weights / weights.sum()).tolist()


def _quotas(probs: list[float], total: int) -> np.ndarray:
    """Largest-remainder rounding of probs * total to integers summing to total."""
    exact = np.asarray(probs) * total
    quota = np.floor(exact).astype(int)
    order = np.argsort(-(exact - quota), kind="stable")
    quota[order[: total - quota.sum()]] += 1
    return quota


class MultiTaskBatchSampler(Sampler[list[int]]):
    """Batches of global indices into the concatenation of the tasks' datasets.

    Every batch holds one task's examples. An epoch's task order is a seeded shuffle of a
    schedule in which task i fills round(p_i * len) batches (so the empirical frequencies
    match the probabilities); "proportional" without `num_batches` gives each task exactly
    ceil(size_i / batch_size) batches, i.e. one pass over all data. Within a task, examples
    come from a seeded shuffle without replacement, reshuffled when used up (a permutation's
    last, short batch is kept unless drop_last). Everything depends only on (seed, epoch), so
    a resumed run reproduces the order and can skip the batches it already did.
    """

    def __init__(
        self,
        task_sizes: list[int],
        batch_size: int,
        *,
        strategy: str = "temperature",
        temperature: float = 10.0,
        seed: int = 42,
        drop_last: bool = False,
        num_batches: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if drop_last and min(task_sizes) < batch_size:
            raise ValueError("with drop_last every task needs at least batch_size examples")
        if num_batches is not None and num_batches < 0:
            raise ValueError("num_batches must be non-negative")
        self.task_sizes = [int(n) for n in task_sizes]
        self.batch_size = batch_size
        self.strategy = strategy
        self.temperature = temperature
        self.seed = seed
        self.drop_last = drop_last
        self.num_batches = num_batches
        self.probs = task_sampling_probs(self.task_sizes, strategy, temperature)
        self.offsets = np.concatenate([[0], np.cumsum(self.task_sizes)[:-1]]).astype(int)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order the next iteration yields."""
        self.epoch = epoch

    def batches_per_task(self) -> list[int]:
        """Batches one pass over each task gives."""
        rounding = math.floor if self.drop_last else math.ceil
        return [rounding(n / self.batch_size) for n in self.task_sizes]

    def __len__(self) -> int:
        return self.num_batches if self.num_batches is not None else sum(self.batches_per_task())

    def schedule(self) -> np.ndarray:
        """The task of each batch of the current epoch."""
        if self.strategy == "proportional" and self.num_batches is None:
            quota = np.asarray(self.batches_per_task())
        else:
            quota = _quotas(self.probs, len(self))
        tasks = np.repeat(np.arange(len(self.task_sizes)), quota)
        return self._rng(-1).permutation(tasks)

    def _rng(self, stream: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, stream + 1])

    def _task_batches(self, task: int) -> Iterator[list[int]]:
        rng, size, step = self._rng(task), self.task_sizes[task], self.batch_size
        while True:
            order = rng.permutation(size) + self.offsets[task]
            for start in range(0, size, step):
                batch = order[start : start + step]
                if len(batch) == step or not self.drop_last:
                    yield batch.tolist()

    def __iter__(self) -> Iterator[list[int]]:
        streams = [self._task_batches(t) for t in range(len(self.task_sizes))]
        for task in self.schedule():
            yield next(streams[task])

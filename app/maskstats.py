"""Statistics of a prototype's task masks for the Masks tab (numbers only, no plotting)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from propetl import masks as M

#: Overlay codes of a two-task bitmap.
NEITHER, ONLY_A, ONLY_B, BOTH = 0, 1, 2, 3


@dataclass
class MaskStack:
    """One masked tensor (e.g. `adapter.down`) of every task: bool [L, *shape] per task."""

    key: str
    keep: float
    masks: dict[str, torch.Tensor]
    #: The masks each task started training from (every task of a prototype starts from the
    #: same seeded scores unless it was saved with mask_init "per-task").
    starts: dict[str, torch.Tensor] | None = None

    @property
    def tasks(self) -> list[str]:
        return list(self.masks)

    @property
    def num_layers(self) -> int:
        return int(next(iter(self.masks.values())).shape[0])

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(next(iter(self.masks.values())).shape[1:])


def mask_stacks(model: Any) -> dict[str, MaskStack]:
    """Every masked tensor of a loaded ProPETL model, keyed `bank.tensor` (empty: no masks)."""
    out: dict[str, MaskStack] = {}
    keep = float(model.config.keep_ratio)
    with torch.no_grad():
        for bank_name, bank in model.banks.items():
            per_task = {task: bank.masks(task) for task in model.task_names}
            starts = (
                {task: bank.start_masks(task) for task in model.task_names}
                if hasattr(bank, "start_masks")
                else {}
            )
            names = next(iter(per_task.values()), {}).keys()
            for name in names:
                out[f"{bank_name}.{name}"] = MaskStack(
                    f"{bank_name}.{name}",
                    keep,
                    {t: m[name].detach().bool().cpu() for t, m in per_task.items()},
                    {t: m[name].detach().bool().cpu() for t, m in starts.items()} or None,
                )
    return out


def task_matrix(stack: MaskStack, metric: str, layer: int | None = None) -> np.ndarray:
    """Task x task Hamming distance or Jaccard overlap at `layer` (None: mean over layers)."""
    layers = range(stack.num_layers) if layer is None else [layer]
    mats = [
        M.pairwise(torch.stack([stack.masks[t][i] for t in stack.tasks]), metric) for i in layers
    ]
    return np.mean(mats, axis=0)


def layer_matrix(stack: MaskStack, task: str, metric: str) -> np.ndarray:
    """Layer x layer Hamming distance or Jaccard overlap within one task."""
    return M.pairwise(stack.masks[task], metric)


def density_per_layer(stack: MaskStack) -> dict[str, np.ndarray]:
    """Fraction kept in each layer, per task."""
    return {t: M.density(m).numpy() for t, m in stack.masks.items()}


def hamming_per_layer(stack: MaskStack) -> np.ndarray:
    """Mean Hamming distance over all task pairs, per layer (NaN with fewer than two tasks)."""
    n = len(stack.tasks)
    if n < 2:
        return np.full(stack.num_layers, np.nan)
    upper = np.triu_indices(n, k=1)
    return np.array(
        [task_matrix(stack, "hamming", i)[upper].mean() for i in range(stack.num_layers)]
    )


def start_distance(stack: MaskStack, layer: int | None = None) -> dict[str, float]:
    """Each task's Hamming distance from the masks it started from, at `layer` (None: mean
    over layers): how far training moved it. Empty when the starts are unknown."""
    if not stack.starts:
        return {}
    out = {}
    for task, mask in stack.masks.items():
        start = stack.starts[task]
        if layer is not None:
            mask, start = mask[layer], start[layer]
        out[task] = M.hamming(mask, start)
    return out


def random_baseline(stack: MaskStack) -> float:
    """Expected Hamming distance of two independent random masks, 2k(1-k)."""
    return M.random_hamming_baseline(stack.keep)


def overlay(stack: MaskStack, task_a: str, task_b: str, layer: int) -> np.ndarray:
    """Codes NEITHER / ONLY_A / ONLY_B / BOTH of one layer's mask of two tasks."""
    a = stack.masks[task_a][layer].reshape(stack.shape[0], -1).numpy()
    b = stack.masks[task_b][layer].reshape(stack.shape[0], -1).numpy()
    return (a & b) * BOTH + (a & ~b) * ONLY_A + (~a & b) * ONLY_B


def keep_rates(stack: MaskStack, task: str, layer: int) -> tuple[np.ndarray, np.ndarray]:
    """Keep rate of each output neuron (row) and input neuron (column) of one layer's mask."""
    return M.neuron_keep_rates(stack.masks[task][layer].reshape(stack.shape[0], -1))

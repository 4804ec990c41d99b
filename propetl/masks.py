"""Binary masks: top-k with a straight-through estimator, bit packing and mask statistics."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn


def kept_count(numel: int, keep: float) -> int:
    """Number of entries a mask keeps in a tensor of `numel` entries: ceil(k * numel)."""
    return min(numel, max(1, math.ceil(keep * numel - 1e-9)))


class _TopKStraightThrough(torch.autograd.Function):
    """Forward: 1 for the top-k entries of each row, else 0. Backward: identity (STE)."""

    @staticmethod
    def forward(ctx, magnitudes: torch.Tensor, k: int) -> torch.Tensor:  # type: ignore[override]
        flat = magnitudes.reshape(magnitudes.shape[0], -1)
        mask = torch.zeros_like(flat)
        if k >= flat.shape[1]:
            mask.fill_(1.0)
        else:
            mask.scatter_(1, flat.topk(k, dim=1, sorted=False).indices, 1.0)
        return mask.view_as(magnitudes)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        return grad, None


def topk_mask(scores: torch.Tensor, keep: float) -> torch.Tensor:
    """Per-row binary mask over a stack of score tensors [R, *shape] (row = one layer).

    Keeps the top `ceil(keep * numel(shape))` entries of |scores| in each row. Gradients flow
    to the scores straight through the binarisation and then through abs() (times sign).
    """
    per_row = scores[0].numel()
    return _TopKStraightThrough.apply(scores.abs(), kept_count(per_row, keep))


def init_scores(
    shape: tuple[int, ...], generator: torch.Generator | None = None, fan_in: int | None = None
) -> torch.Tensor:
    """Kaiming-uniform (a = sqrt(5)) scores for a stack [R, *shape], each row drawn independently,
    so that every layer starts from a different random mask.

    Kaiming-uniform with a = sqrt(5) is U(-1/sqrt(fan_in), 1/sqrt(fan_in)). By default the fan-in
    is torch's for one row (`shape[1]`'s size times the rest's for a row of >= 2 dims); pass
    `fan_in` to draw as the public code does where it stores a tensor in another layout (its
    adapter masks are transposed, its prefix masks one [L, P, 2d] block of fan-in P * 2d).
    """
    out = torch.empty(shape)
    if fan_in is not None:
        bound = 1.0 / math.sqrt(fan_in)
        with torch.no_grad():
            for row in out:
                row.uniform_(-bound, bound, generator=generator)
        return out
    for row in out:
        nn.init.kaiming_uniform_(
            row if row.dim() >= 2 else row.view(1, -1), a=math.sqrt(5), generator=generator
        )
    return out


def random_mask(
    shape: tuple[int, ...],
    keep: float,
    generator: torch.Generator | None = None,
    fan_in: int | None = None,
) -> torch.Tensor:
    """A fixed random binary mask stack [R, *shape]: exactly as many kept entries per row as
    `topk_mask` keeps, drawn as the top-k of fresh `init_scores` (the mask that learned scores
    would start from)."""
    with torch.no_grad():
        return topk_mask(init_scores(shape, generator, fan_in), keep)


# ---------------------------------------------------------------- bit packing


def pack_bits(mask: torch.Tensor) -> torch.Tensor:
    """Pack a binary tensor into uint8, 8 entries per byte (big-endian bit order)."""
    flat = mask.detach().to("cpu").reshape(-1).numpy().astype(bool)
    return torch.from_numpy(np.packbits(flat))


def unpack_bits(packed: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Inverse of `pack_bits`: a float {0,1} tensor of `shape`."""
    numel = math.prod(shape)
    if packed.numel() != (numel + 7) // 8:
        raise ValueError(
            f"packed mask has {packed.numel()} bytes, expected {(numel + 7) // 8} "
            f"for shape {tuple(shape)}"
        )
    bits = np.unpackbits(packed.to("cpu").numpy().astype(np.uint8), count=numel)
    return torch.from_numpy(bits.astype(np.float32)).reshape(shape)


def unpack_bits_tensor(packed: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """`unpack_bits` with torch operations on the packed tensor's own device (no copy to the
    CPU): what a served task does each time its masks are materialised."""
    numel = math.prod(shape)
    if packed.numel() != (numel + 7) // 8:
        raise ValueError(
            f"packed mask has {packed.numel()} bytes, expected {(numel + 7) // 8} "
            f"for shape {tuple(shape)}"
        )
    shifts = torch.arange(7, -1, -1, dtype=torch.uint8, device=packed.device)
    bits = (packed.reshape(-1, 1) >> shifts) & 1
    return bits.reshape(-1)[:numel].float().reshape(shape)


# ---------------------------------------------------------------- statistics on binary masks


def density(mask: torch.Tensor) -> torch.Tensor:
    """Fraction kept in each row of a stack [R, *shape]."""
    return mask.reshape(mask.shape[0], -1).float().mean(dim=1)


def hamming(a: torch.Tensor, b: torch.Tensor) -> float:
    """Normalised Hamming distance mean(a XOR b) of two binary masks."""
    return (a.bool() ^ b.bool()).float().mean().item()


def jaccard(a: torch.Tensor, b: torch.Tensor) -> float:
    """|a AND b| / |a OR b| of the kept sets (1.0 for two empty masks)."""
    a, b = a.bool(), b.bool()
    union = (a | b).sum().item()
    return 1.0 if union == 0 else (a & b).sum().item() / union


def pairwise(masks: torch.Tensor, metric: str = "hamming") -> np.ndarray:
    """Matrix of `metric` between all pairs of a stack [N, *shape] of binary masks."""
    flat = masks.reshape(masks.shape[0], -1).float()
    inter = flat @ flat.T
    sizes = flat.sum(dim=1)
    if metric == "hamming":
        out = (sizes[:, None] + sizes[None, :] - 2 * inter) / flat.shape[1]
    elif metric == "jaccard":
        union = sizes[:, None] + sizes[None, :] - inter
        out = torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))
    else:
        raise ValueError(f"metric must be 'hamming' or 'jaccard', got {metric!r}")
    return out.numpy()


def random_hamming_baseline(keep: float) -> float:
    """Expected normalised Hamming distance of two independent random masks of keep ratio k."""
    return 2 * keep * (1 - keep)


def neuron_keep_rates(mask: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Keep rate of each output row and each input column of a 2-D mask (out, in)."""
    mask = mask.float()
    return mask.mean(dim=1).numpy(), mask.mean(dim=0).numpy()

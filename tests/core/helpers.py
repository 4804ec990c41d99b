"""Small builders shared by the core tests."""

from __future__ import annotations

import torch

from propetl import PropetlConfig, ProPETLModel, TaskHeadSpec
from propetl.tiny import tiny_backbone

SMALL = {"bottleneck": 8, "lora_r": 4, "prefix_len": 4, "prefix_hidden": 16}


def build(
    family: str = "bert",
    petl: str = "adapter",
    sharing: str = "propetl",
    tasks: tuple[TaskHeadSpec, ...] = (TaskHeadSpec("a", 2),),
    **overrides,
) -> ProPETLModel:
    config = PropetlConfig(petl=petl, sharing=sharing, **{**SMALL, **overrides})
    return ProPETLModel(tiny_backbone(family), config, list(tasks))


def batch(size: int = 6, length: int = 10, seed: int = 0, pad_first: bool = True):
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 256, (size, length), generator=generator)
    mask = torch.ones_like(ids)
    if pad_first:
        mask[0, length // 2 :] = 0
        ids[0, length // 2 :] = 0
    return ids, mask


def nudge(model: ProPETLModel) -> None:
    """Move every trainable tensor away from its init (LoRA's B starts at zero)."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.requires_grad and ".scores." not in name:
                param.add_(torch.randn_like(param) * 0.05)

"""The modules ProPETL places inside a frozen backbone, and the per-forward state they read.

The model computes each bank's effective tensors once per forward (or takes them from the
materialised cache) and puts them in a `ForwardState`; every injected module reads its own
layer's slice from there. A batch that mixes tasks is split into one group per task.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

Tensors = dict[str, torch.Tensor]
ATTENTION_NAME = "propetl_sdpa"


@dataclass
class TaskGroup:
    """The examples of one task in a batch (`index` None = the whole batch)."""

    index: torch.Tensor | None
    weights: dict[str, Tensors]  # bank -> name -> [L, *shape]


@dataclass
class ForwardState:
    groups: list[TaskGroup] = field(default_factory=list)
    example_group: torch.Tensor | None = None  # [B] group of each example (mixed batches)

    def layer(self, group: TaskGroup, bank: str, layer: int) -> Tensors:
        return {name: value[layer] for name, value in group.weights[bank].items()}

    def per_task(self, bank: str, layer: int, x: torch.Tensor,
                 fn: Callable[[torch.Tensor, Tensors], torch.Tensor]) -> torch.Tensor:
        """Apply `fn(x_of_task, that_task's_layer_tensors)` to each task's examples."""
        if not self.groups:
            raise RuntimeError("ProPETL layer called outside ProPETLModel.forward")
        if len(self.groups) == 1:
            return fn(x, self.layer(self.groups[0], bank, layer))
        out: torch.Tensor | None = None
        for group in self.groups:
            result = fn(x[group.index], self.layer(group, bank, layer))
            if out is None:
                out = result.new_empty((x.shape[0], *result.shape[1:]))
            out[group.index] = result
        assert out is not None
        return out


class AdapterOutput(nn.Module):
    """The FFN output projection followed by a Pfeiffer adapter (up(relu(down(h))) + h)."""

    def __init__(self, base: nn.Linear, state: ForwardState, bank: str, layer: int) -> None:
        super().__init__()
        self.base = base
        self.state, self.bank, self.layer = state, bank, layer

    @property
    def weight(self) -> torch.Tensor:
        """The wrapped projection's weight (T5's FFN reads `wo.weight.dtype`)."""
        return self.base.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.base(x)

        def adapter(h: torch.Tensor, w: Tensors) -> torch.Tensor:
            inner = F.relu(F.linear(h, w["down"], w["down_bias"]))
            return h + F.linear(inner, w["up"], w["up_bias"])

        return self.state.per_task(self.bank, self.layer, hidden, adapter)


class LoraLinear(nn.Module):
    """A frozen projection plus the low-rank update (alpha / r) * B (A x)."""

    def __init__(self, base: nn.Linear, state: ForwardState, bank: str, layer: int,
                 scale: float) -> None:
        super().__init__()
        self.base = base
        self.state, self.bank, self.layer, self.scale = state, bank, layer, scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        def update(h: torch.Tensor, w: Tensors) -> torch.Tensor:
            return F.linear(F.linear(h, w["A"]), w["B"]) * self.scale

        return self.base(x) + self.state.per_task(self.bank, self.layer, x, update)


class PrefixHook:
    """Gives one attention layer its prefix keys and values, [B, heads, P, head_dim] each."""

    def __init__(self, state: ForwardState, bank: str, layer: int, num_heads: int) -> None:
        self.state, self.bank, self.layer, self.num_heads = state, bank, layer, num_heads

    def __call__(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        groups = self.state.groups
        if len(groups) == 1:
            kv = self.state.layer(groups[0], self.bank, self.layer)["kv"].unsqueeze(0)
            kv = kv.expand(batch, *kv.shape[1:])
        else:
            stacked = torch.stack([self.state.layer(g, self.bank, self.layer)["kv"] for g in groups])
            assert self.state.example_group is not None
            kv = stacked[self.state.example_group]
        keys, values = kv.chunk(2, dim=-1)  # [B, P, d] each
        shape = (batch, keys.shape[1], self.num_heads, -1)
        return keys.reshape(shape).transpose(1, 2), values.reshape(shape).transpose(1, 2)


def _extend_mask(mask: torch.Tensor | None, prefix_len: int) -> torch.Tensor | None:
    """Let every query see the prefix positions, which come before the sequence's keys."""
    if mask is None:
        return None
    shape = (*mask.shape[:-1], prefix_len)
    visible = mask.new_ones(shape) if mask.dtype == torch.bool else mask.new_zeros(shape)
    return torch.cat([visible, mask], dim=-1)


def prefix_attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor,
                     value: torch.Tensor, attention_mask: torch.Tensor | None, **kwargs):
    """SDPA attention whose keys / values start with the module's ProPETL prefix, if any."""
    hook: PrefixHook | None = getattr(module, "_propetl_prefix", None)
    if hook is not None:
        prefix_keys, prefix_values = hook(query.shape[0])
        key = torch.cat([prefix_keys.to(key.dtype), key], dim=2)
        value = torch.cat([prefix_values.to(value.dtype), value], dim=2)
        attention_mask = _extend_mask(attention_mask, prefix_keys.shape[2])
    return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)


def register_prefix_attention() -> str:
    """Register the prefix-aware attention with transformers; returns its implementation name."""
    ALL_ATTENTION_FUNCTIONS.register(ATTENTION_NAME, prefix_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(ATTENTION_NAME, sdpa_mask)
    return ATTENTION_NAME

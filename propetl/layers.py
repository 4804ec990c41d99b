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

    def per_task(
        self,
        bank: str,
        layer: int,
        x: torch.Tensor,
        fn: Callable[[torch.Tensor, Tensors], torch.Tensor],
    ) -> torch.Tensor:
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
    """The FFN output projection followed by an adapter reading it, up(relu(down(h))) + h:
    the placement of models saved before the Pfeiffer one (`adapter_placement` "ffn-output")."""

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


def _adapter_delta(state: ForwardState, bank: str, layer: int, a: torch.Tensor) -> torch.Tensor:
    """up(relu(down(a))) with each example's task's tensors."""

    def delta(x: torch.Tensor, w: Tensors) -> torch.Tensor:
        return F.linear(F.relu(F.linear(x, w["down"], w["down_bias"])), w["up"], w["up_bias"])

    return state.per_task(bank, layer, a, delta)


class PfeifferAdapter(nn.Module):
    """A Pfeiffer adapter around one layer's FFN block (see `families` for the styles).

    With h the FFN's output and x the layer's residual input: a = LN(h + x) with the layer's
    own output LayerNorm (pre-LN layers, which have none there: a = h + x), and the block's
    output becomes h + up(relu(down(a))) before the layer's residual sum (and LayerNorm).
    `base` is the wrapped module, so its weights keep their names under `base.`.
    """

    def __init__(
        self,
        base: nn.Module,
        style: str,
        state: ForwardState,
        bank: str,
        layer: int,
        norm: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.base, self.style = base, style
        self.state, self.bank, self.layer = state, bank, layer
        self._residual: torch.Tensor | None = None
        if style == "ffn":
            assert norm is not None
            self._norm = [norm]  # the block's module (a list: not registered twice)
        elif style == "pre-ln-mlp":
            assert norm is not None
            norm.register_forward_pre_hook(self._capture)

    def _capture(self, module: nn.Module, args: tuple) -> None:
        self._residual = args[0]

    def _delta(self, a: torch.Tensor) -> torch.Tensor:
        return _adapter_delta(self.state, self.bank, self.layer, a)

    def forward(self, hidden_states: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        base = self.base
        if self.style == "post-ln":  # BertOutput(intermediate, input_tensor)
            x = args[0] if args else kwargs["input_tensor"]
            h = base.dropout(base.dense(hidden_states))
            out = h + self._delta(base.LayerNorm(h + x))
            return base.LayerNorm(out + x)
        if self.style == "ffn":  # DistilBERT's FFN(x); the block adds x and normalises
            h = base(hidden_states)
            return h + self._delta(self._norm[0](h + hidden_states))
        if self.style == "pre-ln":  # T5LayerFF(x) = x + dropout(FF(LN(x)))
            x = hidden_states
            h = base.dropout(base.DenseReluDense(base.layer_norm(x)))
            return x + h + self._delta(h + x)
        if self.style == "pre-ln-mlp":  # Llama's MLP(LN(x)); the layer adds x
            x, self._residual = self._residual, None
            if x is None:
                raise RuntimeError("the adapter's MLP was called without its layer's LayerNorm")
            h = base(hidden_states, *args, **kwargs)
            return h + self._delta(h + x)
        raise ValueError(f"unknown adapter style {self.style!r}")


class LoraLinear(nn.Module):
    """A frozen projection plus the low-rank update (alpha / r) * B (A x)."""

    def __init__(
        self, base: nn.Linear, state: ForwardState, bank: str, layer: int, scale: float
    ) -> None:
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
            stacked = torch.stack(
                [self.state.layer(g, self.bank, self.layer)["kv"] for g in groups]
            )
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


def prefix_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    **kwargs,
):
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

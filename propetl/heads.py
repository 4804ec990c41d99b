"""Task heads: a small trained module per task on top of the backbone (not counted as PETL)."""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor | None, pooling: str) -> torch.Tensor:
    """First-token ("cls") or attention-masked mean pooling of [B, T, d] to [B, d]."""
    if pooling == "cls":
        return hidden[:, 0]
    if attention_mask is None:
        return hidden.mean(dim=1)
    weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


class TaskHead(nn.Module):
    """`linear`: dropout + Linear(d, C). `roberta`: the two-layer head RoBERTa classifiers use.

    The linear head is one module holding its weight and bias (a served prototype may carry
    1,000 heads, and a Sequential(Dropout, Linear) was three more modules of ~2 KB each); its
    state dict keeps that Sequential's names (`net.1.weight`), so saved heads and training
    checkpoints read the same either way."""

    _LINEAR_KEYS: ClassVar[dict[str, str]] = {"weight": "net.1.weight", "bias": "net.1.bias"}

    def __init__(
        self,
        hidden_size: int,
        num_labels: int,
        kind: str = "linear",
        dropout: float = 0.1,
        pooling: str = "cls",
    ) -> None:
        super().__init__()
        self.pooling, self.kind, self.p = pooling, kind, dropout
        if kind == "roberta":
            self.net = nn.Sequential(
                nn.Dropout(dropout),
                nn.Linear(hidden_size, hidden_size),
                nn.Tanh(),
                nn.Dropout(dropout),
                nn.Linear(hidden_size, num_labels),
            )
            for module in self.net:
                if isinstance(module, nn.Linear):
                    nn.init.normal_(module.weight, std=0.02)
                    nn.init.zeros_(module.bias)
            return
        weight, bias = torch.empty(num_labels, hidden_size), torch.empty(num_labels)
        # the random draws of nn.Linear's own initialisation, so seeded runs are unchanged
        nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
        nn.init.uniform_(bias, -1 / math.sqrt(hidden_size), 1 / math.sqrt(hidden_size))
        self.weight = nn.Parameter(nn.init.normal_(weight, std=0.02))
        self.bias = nn.Parameter(nn.init.zeros_(bias))

    def linear_layers(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(weight, bias) of each Linear, input side first (what an export copies)."""
        if self.kind == "roberta":
            return [(m.weight, m.bias) for m in self.net if isinstance(m, nn.Linear)]
        return [(self.weight, self.bias)]

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        pooled = pool(hidden, attention_mask, self.pooling)
        if self.kind == "roberta":
            return self.net(pooled)
        return F.linear(F.dropout(pooled, self.p, self.training), self.weight, self.bias)

    def _save_to_state_dict(self, destination, prefix, keep_vars):  # type: ignore[override]
        if self.kind == "roberta":
            return super()._save_to_state_dict(destination, prefix, keep_vars)
        for name, key in self._LINEAR_KEYS.items():
            value = getattr(self, name)
            destination[prefix + key] = value if keep_vars else value.detach()

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[override]
        if self.kind != "roberta":
            for name, key in self._LINEAR_KEYS.items():
                if prefix + key in state_dict:
                    state_dict[prefix + name] = state_dict.pop(prefix + key)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

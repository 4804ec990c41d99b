"""Task heads: a small trained module per task on top of the backbone (not counted as PETL)."""

from __future__ import annotations

import torch
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
    """`linear`: dropout + Linear(d, C). `roberta`: the two-layer head RoBERTa classifiers use."""

    def __init__(self, hidden_size: int, num_labels: int, kind: str = "linear",
                 dropout: float = 0.1, pooling: str = "cls") -> None:
        super().__init__()
        self.pooling = pooling
        layers: list[nn.Module] = [nn.Dropout(dropout)]
        if kind == "roberta":
            layers += [nn.Linear(hidden_size, hidden_size), nn.Tanh(), nn.Dropout(dropout)]
        layers.append(nn.Linear(hidden_size, num_labels))
        self.net = nn.Sequential(*layers)
        for module in self.net:
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        return self.net(pool(hidden, attention_mask, self.pooling))

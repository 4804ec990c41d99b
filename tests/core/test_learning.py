"""Each PETL kind, in each supported family, learns a small synthetic task."""

import pytest
import torch

from propetl import TaskHeadSpec
from propetl.tiny import TINY_FAMILIES

from .helpers import build

MARKER = 7


def synthetic(n: int, seed: int):
    """Label 1 iff the marker token appears; position and context vary."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(10, 200, (n, 12), generator=generator)
    labels = torch.randint(0, 2, (n,), generator=generator)
    where = torch.randint(1, 12, (n,), generator=generator)
    ids[labels == 1, where[labels == 1]] = MARKER
    ids[:, 0] = 2
    return ids, torch.ones_like(ids), labels


def accuracy(model, ids, mask, labels) -> float:
    model.eval()
    with torch.no_grad():
        return (model(ids, mask).logits.argmax(-1) == labels).float().mean().item()


@pytest.mark.parametrize("family", TINY_FAMILIES)
@pytest.mark.parametrize("petl", ["adapter", "lora", "prefix"])
def test_each_kind_learns_in_each_family(family, petl):
    torch.manual_seed(0)
    model = build(
        family,
        petl,
        tasks=(TaskHeadSpec("marker", 2),),
        pooling="mean",
        bottleneck=16,
        lora_r=8,
        prefix_len=8,
        prefix_hidden=32,
        keep=0.5,
    )
    ids, mask, labels = synthetic(512, seed=1)
    test_ids, test_mask, test_labels = synthetic(256, seed=2)
    groups = model.parameter_groups()
    optimizer = torch.optim.AdamW(
        [
            {"params": groups["scores"], "lr": 3e-2 if petl == "lora" else 3e-3},
            {"params": groups["weights"] + groups["no_decay"], "lr": 1e-2},
        ]
    )
    before = accuracy(model, test_ids, test_mask, test_labels)
    for _ in range(6):
        for start in range(0, len(ids), 32):
            model.train()
            rows = slice(start, start + 32)
            loss = model(ids[rows], mask[rows], labels=labels[rows]).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    after = accuracy(model, test_ids, test_mask, test_labels)
    assert after >= 0.75, f"{family}/{petl}: accuracy {before:.2f} -> {after:.2f}"

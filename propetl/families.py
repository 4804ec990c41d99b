"""Supported backbone families: where each one keeps the parts ProPETL attaches to.

Adding a family is one declarative entry: the attribute paths of its layer list and, inside a
layer, of the FFN output projection, the query / value projections and the self-attention
module (whose attention call receives the prefix keys / values).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn


class UnsupportedModelError(ValueError):
    """The backbone's architecture is not one ProPETL knows how to attach to."""


@dataclass(frozen=True)
class Family:
    name: str
    model_types: tuple[str, ...]
    layers: str
    ffn_out: str
    query: str
    value: str
    attention: str


FAMILIES: tuple[Family, ...] = (
    Family("bert", ("bert",), "encoder.layer", "output.dense",
           "attention.self.query", "attention.self.value", "attention.self"),
    Family("roberta", ("roberta", "xlm-roberta", "camembert"), "encoder.layer", "output.dense",
           "attention.self.query", "attention.self.value", "attention.self"),
    Family("electra", ("electra",), "encoder.layer", "output.dense",
           "attention.self.query", "attention.self.value", "attention.self"),
    Family("distilbert", ("distilbert",), "transformer.layer", "ffn.lin2",
           "attention.q_lin", "attention.v_lin", "attention"),
)


def supported_model_types() -> list[str]:
    return sorted(t for family in FAMILIES for t in family.model_types)


def family_for(model_type: str) -> Family:
    for family in FAMILIES:
        if model_type in family.model_types:
            return family
    raise UnsupportedModelError(
        f"backbone type {model_type!r} is not supported; supported families: "
        + ", ".join(f"{f.name} ({'/'.join(f.model_types)})" for f in FAMILIES))


def get_path(root: nn.Module, path: str) -> nn.Module:
    module = root
    for part in path.split("."):
        module = getattr(module, part)
    return module


def set_path(root: nn.Module, path: str, value: nn.Module) -> None:
    parent, _, name = path.rpartition(".")
    setattr(get_path(root, parent) if parent else root, name, value)

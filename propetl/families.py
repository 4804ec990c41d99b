"""Supported backbone families: where each one keeps the parts ProPETL attaches to.

Adding a family is one declarative entry: the attribute paths of its layer list and, inside a
layer, of the FFN output projection, the query / value projections and the self-attention
module (whose attention call receives the prefix keys / values). Generative families also say
what they generate with ("seq2seq": encoder-decoder, "causal": decoder-only) and, for
encoder-decoders, where the decoder's layers are: encoder and decoder layers then form one
layer list, so one prototype is shared by both. A path part that is an integer indexes a list
("layer.-1" is a T5 block's last sub-layer, its FFN in the encoder and in the decoder).

The Pfeiffer adapter (the paper's, AdapterHub's `pfeiffer` config as the public code runs it)
reads LN(h + x), h the FFN's output and x the layer's residual input, adds its output to h,
and the layer then applies its output LayerNorm to that + x. Where it sits is `adapter_block`,
wrapped according to `adapter_style`:
- "post-ln" (BERT, RoBERTa, ELECTRA): the `output` module (dense, dropout, LayerNorm), called
  with the FFN's intermediate activations and x; the wrapper computes LN(h + adapter + x).
- "ffn" (DistilBERT): the `ffn` module, called with x; its output h + adapter(LN(h + x)) then
  goes through the block's own `output_layer_norm(. + x)`; the LayerNorm is `adapter_norm`.
- "pre-ln" (T5's FF sub-layer) and "pre-ln-mlp" (Llama's MLP): pre-LayerNorm layers have no
  LayerNorm after the residual sum, so, as AdapterHub does for them (layer_norm None), the
  adapter reads h + x and the output is x + h + adapter(h + x). T5 wraps the whole FF
  sub-layer (it sees x); Llama wraps the MLP, which sees only the normed x, and reads x from
  the input of `adapter_norm` (post_attention_layernorm) through a forward pre-hook.
Models saved with `adapter_placement` "ffn-output" (before this existed) keep the old adapter:
`ffn_out` wrapped, h + up(relu(down(h))).
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
    kind: str = "encoder"  # "encoder" | "seq2seq" | "causal"
    decoder_layers: str | None = None
    prefix: bool = True  # whether prefix-tuning is supported
    adapter_block: str = "output"  # what the Pfeiffer adapter wraps (see the module doc)
    adapter_style: str = "post-ln"  # "post-ln" | "ffn" | "pre-ln" | "pre-ln-mlp"
    adapter_norm: str | None = None  # "ffn": the output LayerNorm; "pre-ln-mlp": x's LayerNorm

    @property
    def generative(self) -> bool:
        return self.kind != "encoder"


FAMILIES: tuple[Family, ...] = (
    Family(
        "bert",
        ("bert",),
        "encoder.layer",
        "output.dense",
        "attention.self.query",
        "attention.self.value",
        "attention.self",
    ),
    Family(
        "roberta",
        ("roberta", "xlm-roberta", "camembert"),
        "encoder.layer",
        "output.dense",
        "attention.self.query",
        "attention.self.value",
        "attention.self",
    ),
    Family(
        "electra",
        ("electra",),
        "encoder.layer",
        "output.dense",
        "attention.self.query",
        "attention.self.value",
        "attention.self",
    ),
    Family(
        "distilbert",
        ("distilbert",),
        "transformer.layer",
        "ffn.lin2",
        "attention.q_lin",
        "attention.v_lin",
        "attention",
        adapter_block="ffn",
        adapter_style="ffn",
        adapter_norm="output_layer_norm",
    ),
    Family(
        "t5",
        ("t5", "mt5"),
        "encoder.block",
        "layer.-1.DenseReluDense.wo",
        "layer.0.SelfAttention.q",
        "layer.0.SelfAttention.v",
        "layer.0.SelfAttention",
        kind="seq2seq",
        decoder_layers="decoder.block",
        prefix=False,
        adapter_block="layer.-1",
        adapter_style="pre-ln",
    ),
    Family(
        "llama",
        ("llama", "mistral", "qwen2"),
        "model.layers",
        "mlp.down_proj",
        "self_attn.q_proj",
        "self_attn.v_proj",
        "self_attn",
        kind="causal",
        prefix=False,
        adapter_block="mlp",
        adapter_style="pre-ln-mlp",
        adapter_norm="post_attention_layernorm",
    ),
)


def supported_model_types() -> list[str]:
    return sorted(t for family in FAMILIES for t in family.model_types)


def family_for(model_type: str) -> Family:
    for family in FAMILIES:
        if model_type in family.model_types:
            return family
    raise UnsupportedModelError(
        f"backbone type {model_type!r} is not supported; supported families: "
        + ", ".join(f"{f.name} ({'/'.join(f.model_types)})" for f in FAMILIES)
    )


def _is_index(part: str) -> bool:
    return part.lstrip("-").isdigit()


def get_path(root: nn.Module, path: str) -> nn.Module:
    module = root
    for part in path.split("."):
        module = module[int(part)] if _is_index(part) else getattr(module, part)  # type: ignore[index]
    return module


def set_path(root: nn.Module, path: str, value: nn.Module) -> None:
    parent_path, _, name = path.rpartition(".")
    parent = get_path(root, parent_path) if parent_path else root
    if _is_index(name):
        parent[int(name)] = value  # type: ignore[index]
    else:
        setattr(parent, name, value)

"""Generative families (encoder-decoder and decoder-only): the LM loss and generation.

The backbone keeps its own LM head; ProPETL only changes the layers' modules. Training uses
teacher forcing: an encoder-decoder reads the source and predicts the target from the target
shifted right; a decoder-only model reads prompt + target and is scored on the target tokens
only (labels are -100 elsewhere). Generation runs the backbone's own `generate` (greedy, beam
search, sampling) under the masks of one task, or of each example's task.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from transformers.modeling_outputs import CausalLMOutputWithPast, Seq2SeqLMOutput

if TYPE_CHECKING:
    from .model import ProPETLModel

IGNORE_INDEX = -100


def lm_loss(
    logits: torch.Tensor, labels: torch.Tensor, causal: bool, label_smoothing: float = 0.0
) -> torch.Tensor:
    """Token-level cross-entropy over the labelled positions (causal: next-token shift)."""
    if causal:
        logits, labels = logits[:, :-1], labels[:, 1:]
    return F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]).float(),
        labels.reshape(-1),
        ignore_index=IGNORE_INDEX,
        label_smoothing=label_smoothing,
    )


def lm_forward(
    model: ProPETLModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    labels: torch.Tensor | None,
    decoder_input_ids: torch.Tensor | None = None,
    decoder_attention_mask: torch.Tensor | None = None,
    **_: object,
):
    """One teacher-forced forward of a generative backbone; called inside `model.routing`."""
    backbone = model.backbone
    if model.family.kind == "seq2seq":
        if decoder_input_ids is None:
            if labels is None:
                raise ValueError("an encoder-decoder forward needs labels or decoder_input_ids")
            decoder_input_ids = backbone.prepare_decoder_input_ids_from_labels(labels=labels)
        out = backbone(
            input_ids=input_ids,
            attention_mask=attention_mask,
            decoder_input_ids=decoder_input_ids,
            decoder_attention_mask=decoder_attention_mask,
            use_cache=False,
        )
        loss = None if labels is None else lm_loss(out.logits, labels, False, model.label_smoothing)
        return Seq2SeqLMOutput(loss=loss, logits=out.logits)
    out = backbone(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
    loss = None if labels is None else lm_loss(out.logits, labels, True, model.label_smoothing)
    return CausalLMOutputWithPast(loss=loss, logits=out.logits)


@torch.no_grad()
def generate(
    model: ProPETLModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    task_ids: torch.Tensor | None,
    task: str | None,
    **kwargs,
) -> torch.Tensor:
    """Token ids generated for each row (decoder-only: the prompt is cut off; pad prompts on
    the left). Extra keyword arguments go to the backbone's `generate`."""
    if not model.family.generative:
        raise ValueError(f"backbone family {model.family.name!r} does not generate text")
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    beams = int(kwargs.get("num_beams") or 1)
    copies = beams if beams > 1 else int(kwargs.get("num_return_sequences") or 1)
    # generate() repeats every row `copies` times; each copy keeps its example's task
    expanded = None if task_ids is None else task_ids.repeat_interleave(copies)
    config = model.backbone.generation_config
    kwargs.setdefault(
        "pad_token_id",
        config.pad_token_id if config.pad_token_id is not None else config.eos_token_id,
    )
    if model.family.kind == "seq2seq":
        # The encoder runs once on the un-repeated batch, so it is routed separately.
        with model.routing(task_ids, task):
            encoder = model.backbone.get_encoder()
            kwargs["encoder_outputs"] = encoder(input_ids=input_ids, attention_mask=attention_mask)
        with model.routing(expanded, task):
            return model.backbone.generate(
                input_ids=input_ids, attention_mask=attention_mask, **kwargs
            )
    with model.routing(expanded, task):
        out = model.backbone.generate(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
    return out[:, input_ids.shape[1] :]

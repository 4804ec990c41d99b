"""Tiny random backbones and tokenizers, built in memory (tests, demos, smoke benchmarks)."""

from __future__ import annotations

import threading
from collections.abc import Iterable

import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    PreTrainedModel,
    PreTrainedTokenizerFast,
)

TINY_FAMILIES: tuple[str, ...] = ("bert", "roberta", "electra", "distilbert")
#: Generative families (encoder-decoder T5, decoder-only Llama) with their LM heads.
TINY_GENERATIVE: tuple[str, ...] = ("t5", "llama")

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def tiny_config(
    model_type: str = "bert",
    vocab_size: int = 256,
    hidden: int = 32,
    layers: int = 2,
    heads: int = 4,
):
    # Token ids of the generative configs follow BERT's vocabulary: [PAD] 0, [CLS] 101, [SEP] 102.
    special = {
        "pad_token_id": 0,
        "bos_token_id": min(101, vocab_size - 2),
        "eos_token_id": min(102, vocab_size - 1),
    }
    if model_type == "t5":
        return AutoConfig.for_model(
            "t5",
            vocab_size=vocab_size,
            d_model=hidden,
            d_kv=hidden // heads,
            d_ff=2 * hidden,
            num_layers=layers,
            num_heads=heads,
            decoder_start_token_id=0,
            **special,
        )
    if model_type == "llama":
        # grouped-query attention (2 key / value heads) like SmolLM2, so v is narrower than q
        return AutoConfig.for_model(
            "llama",
            vocab_size=vocab_size,
            hidden_size=hidden,
            intermediate_size=2 * hidden,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            num_key_value_heads=heads // 2,
            max_position_embeddings=256,
            tie_word_embeddings=True,
            initializer_range=0.1,
            **special,
        )
    if model_type == "distilbert":
        return AutoConfig.for_model(
            "distilbert",
            vocab_size=vocab_size,
            dim=hidden,
            n_layers=layers,
            n_heads=heads,
            hidden_dim=2 * hidden,
            max_position_embeddings=128,
            pad_token_id=0,
        )
    extra = {"embedding_size": hidden} if model_type == "electra" else {}
    return AutoConfig.for_model(
        model_type,
        vocab_size=vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=2 * hidden,
        max_position_embeddings=128,
        type_vocab_size=2,
        pad_token_id=0,
        **extra,
    )


#: Building one draws from the process's RNG (transformers initialises weights with it): one
#: build at a time, so that concurrent builds (a server's exports) cannot interleave draws.
_BUILD = threading.Lock()


def tiny_backbone(model_type: str = "bert", seed: int = 0, **kwargs) -> PreTrainedModel:
    """A random model whose weights depend on `seed` only; the global RNG state is the same
    afterwards as before (seeded and restored inside `fork_rng`)."""
    auto = {"t5": AutoModelForSeq2SeqLM, "llama": AutoModelForCausalLM}.get(model_type, AutoModel)
    with _BUILD, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = auto.from_config(tiny_config(model_type, **kwargs))
    model.name_or_path = f"tiny-{model_type}"
    return model.eval()


def tiny_tokenizer(corpus: Iterable[str], vocab_size: int = 256) -> PreTrainedTokenizerFast:
    """A WordPiece tokenizer trained in memory on `corpus`, with BERT's special tokens."""
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=SPECIAL)
    tokenizer.train_from_iterator(list(corpus), trainer=trainer)
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )

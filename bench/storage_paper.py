"""The paper's storage accounting for BERT-base and RoBERTa-base shapes (no weights)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from propetl.config import PropetlConfig
from propetl.storage import storage_report_for_config

SHAPES = {
    "bert-base": {
        "model_type": "bert",
        "vocab_size": 30522,
        "type_vocab_size": 2,
        "max_position_embeddings": 512,
    },
    "roberta-base": {
        "model_type": "roberta",
        "vocab_size": 50265,
        "type_vocab_size": 1,
        "max_position_embeddings": 514,
        "pad_token_id": 1,
    },
}
COMMON = {
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
}
#: The paper's Table 1 (RoBERTa-base): % of backbone parameters stored.
PAPER = {
    "adapter": {"propetl": 0.11, "none": 0.95},
    "lora": {"propetl": 0.11, "none": 0.95},
    "prefix": {"propetl": 0.11, "none": 0.95},
}
CONFIGS = {
    "adapter": PropetlConfig(petl="adapter", bottleneck=64, keep=0.5),
    "lora": PropetlConfig(petl="lora", lora_r=32, lora_alpha=48, keep=0.1),
    "prefix": PropetlConfig(petl="prefix", prefix_len=64, keep=0.1),
}


def run() -> dict:
    out: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, shape in SHAPES.items():
            folder = Path(tmp) / name
            folder.mkdir()
            (folder / "config.json").write_text(json.dumps({**shape, **COMMON}))
            for kind, config in CONFIGS.items():
                report = storage_report_for_config(str(folder), config)
                out.setdefault(name, {})[kind] = {
                    "propetl_percent": report.percent_of_backbone,
                    "ordinary_percent": report.baseline_percent_of_backbone,
                    "ratio": report.ratio_to_baseline,
                    "prototype_params": report.prototype_params,
                    "mask_bits_per_task": report.mask_bits_per_task,
                    "paper_percent": PAPER[kind],
                }
    return out

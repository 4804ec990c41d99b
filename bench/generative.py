"""ProPETL on a generative backbone: SmolLM2-135M learns `bbc_headlines` (article -> headline).

Trains ProPETL-LoRA (q and v) with the training engine and scores greedy generations on the
test split with ROUGE-1/2/L, against the untuned model with the same prompt. The untuned model
is the same ProPETL model before training: LoRA's B starts at zero, so its output is the
backbone's own.

    python -m bench.generative            # about 12 CPU-minutes (2 cores)
    python -m bench.generative --smoke    # tiny random Llama, a few examples
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from propetl.backbones import load_backbone_model, load_tokenizer
from propetl.config import TaskHeadSpec, TrainConfig
from propetl.evaluation import evaluate_generative, generate_split
from propetl.model import ProPETLModel
from propetl.training import prepare_data, train

from .common import RESULTS, machine, write_json

TASK = "bbc_headlines"


@dataclass(frozen=True)
class GenSettings:
    backbone: str = "smollm2-135m"
    steps: int = 24
    batch_size: int = 8
    max_length: int = 64  # source tokens (the article's lead carries the headline)
    max_target_length: int = 20
    max_examples: int | None = 64  # per split: keeps a CPU run to about 25 minutes
    out: Path = RESULTS
    smoke: bool = False


def job(settings: GenSettings) -> TrainConfig:
    return TrainConfig(
        backbone=settings.backbone,
        tasks=[TASK],
        max_steps=settings.steps,
        batch_size=settings.batch_size,
        eval_batch_size=32,
        max_length=settings.max_length,
        max_target_length=settings.max_target_length,
        max_examples=settings.max_examples,
        eval_every=settings.steps,
        lr=3e-3,
        mask_lr=3e-2,
        warmup_ratio=0.1,
        propetl={"petl": "lora", "lora_r": 16, "lora_alpha": 32.0, "keep": 0.5},
    )


def untuned(config: TrainConfig) -> tuple[dict[str, float], list[str]]:
    """Test metrics and sample outputs of the backbone before any training."""
    tokenizer = load_tokenizer(config.backbone)
    backbone = load_backbone_model(config.backbone)
    data = prepare_data(config, tokenizer, "causal")
    model = ProPETLModel(backbone, config.propetl, [TaskHeadSpec(TASK, 1)]).eval()
    test = data.test[0]
    metrics = evaluate_generative(
        model,
        test,
        data.collator,
        data.tasks[0].info,
        tokenizer,
        32,
        "cpu",
        1,
        config.max_target_length,
    )
    samples = generate_split(
        model,
        test.select(range(5)),
        data.collator,
        TASK,
        tokenizer,
        max_new_tokens=config.max_target_length,
    )
    return metrics, samples


def tuned_samples(model_dir: Path, config: TrainConfig) -> list[str]:
    tokenizer = load_tokenizer(config.backbone)
    model = ProPETLModel.from_pretrained(model_dir, backbone=config.backbone)
    data = prepare_data(config, tokenizer, "causal")
    return generate_split(
        model,
        data.test[0].select(range(5)),
        data.collator,
        TASK,
        tokenizer,
        max_new_tokens=config.max_target_length,
    )


def run(settings: GenSettings, work: Path) -> dict:
    config = job(settings)
    started = time.monotonic()
    before, before_samples = untuned(config)
    untuned_seconds = time.monotonic() - started
    result = train(config, work / "run", show_progress=True)
    assert result.model_dir is not None
    after = result.test_metrics[TASK]
    references = prepare_data(config, load_tokenizer(config.backbone), "causal").test[0]
    return {
        "backbone": config.backbone,
        "task": TASK,
        "machine": machine(),
        "smoke": settings.smoke,
        "config": config.to_dict(),
        "test_examples": len(references),
        "untuned": before,
        "propetl_lora": after,
        "gain_rougeL": after["rougeL"] - before["rougeL"],
        "train_seconds": result.train_seconds,
        "untuned_eval_seconds": untuned_seconds,
        "train_samples_per_s": result.samples_per_second,
        "task_mask_bytes": result.tasks[TASK]["mask_bytes"],
        "storage": {
            k: result.storage[k]
            for k in (
                "prototype_params",
                "mask_bits_per_task",
                "ratio_to_baseline",
                "percent_of_backbone",
            )
        },
        "samples": [
            {"reference": ref, "untuned": a, "propetl": b}
            for ref, a, b in zip(
                references.select(range(5))["reference"],
                before_samples,
                tuned_samples(result.model_dir, config),
                strict=True,
            )
        ],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    settings = (
        smoke_settings(args.out or RESULTS / "smoke")
        if args.smoke
        else GenSettings(out=args.out or RESULTS)
    )
    if args.steps:
        settings = replace(settings, steps=args.steps)
    with tempfile.TemporaryDirectory(prefix="propetl-gen-") as work:
        results = run(settings, Path(work))
    write_json(settings.out / "generative.json", results)
    print({k: results[k] for k in ("untuned", "propetl_lora", "gain_rougeL", "train_seconds")})


def smoke_settings(out: Path) -> GenSettings:
    return GenSettings(
        backbone="tiny-llama",
        steps=3,
        batch_size=4,
        max_length=32,
        max_target_length=8,
        max_examples=12,
        out=out,
        smoke=True,
    )


if __name__ == "__main__":
    main()

"""Accuracy, trainable parameters, stored bytes per task and training speed on one task.

ProPETL (adapter, LoRA, prefix), the ordinary modules of the same shapes (`none`), PEFT LoRA
r = 8 and r = 32 on query / value, and a head-only baseline: same backbone, tokenised data,
batch size, epochs, learning rate and schedule.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForSequenceClassification, Trainer, TrainingArguments

from propetl.backbones import load_tokenizer, resolve_path
from propetl.config import PropetlConfig, TrainConfig
from propetl.data import MultiTaskCollator, load_task, tokenize_task
from propetl.tiny import tiny_config
from propetl.training import train

from .common import BenchSettings, folder_bytes

TASK = "rotten_tomatoes"
LR = 1e-3

PROPETL_RUNS: dict[str, PropetlConfig] = {
    "propetl_adapter": PropetlConfig(petl="adapter", bottleneck=64, keep=0.5),
    "propetl_lora": PropetlConfig(petl="lora", lora_r=32, lora_alpha=48, keep=0.1),
    "propetl_prefix": PropetlConfig(petl="prefix", prefix_len=64, keep=0.1),
    "none_adapter": PropetlConfig(petl="adapter", bottleneck=64, sharing="none"),
    "none_lora": PropetlConfig(petl="lora", lora_r=32, lora_alpha=48, sharing="none"),
    "none_prefix": PropetlConfig(petl="prefix", prefix_len=64, sharing="none"),
}
PEFT_RUNS: dict[str, int | None] = {"peft_lora_r8": 8, "peft_lora_r32": 32, "head_only": None}


def run_propetl(
    name: str, config: PropetlConfig, settings: BenchSettings, seed: int, work: Path
) -> dict:
    job = TrainConfig(
        backbone=settings.backbone,
        tasks=[TASK],
        propetl=config,
        lr=LR,
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        max_length=settings.max_length,
        max_examples=settings.max_examples,
        eval_every=10**6,
        seed=seed,
    )
    result = train(job, work / f"{name}-{seed}", resume=False)
    storage = result.storage
    model_dir = Path(result.model_dir)
    task_dir = model_dir / "tasks" / TASK
    return {
        "accuracy": result.test_metrics[TASK]["accuracy"],
        "mask_lr": job.mask_lr,
        "trainable_params": _trainable_count(result),
        "task_bytes": (task_dir / "masks.safetensors").stat().st_size,
        "head_bytes": (task_dir / "head.safetensors").stat().st_size,
        "shared_bytes": (model_dir / "prototype.safetensors").stat().st_size,
        "fp32_eq_per_task": storage["per_task_fp32_eq"],
        "fp32_eq_total": storage["propetl_fp32_eq"],
        "train_samples_per_s": result.samples_per_second,
        "train_seconds": result.train_seconds,
    }


def _trainable_count(result) -> int:
    from safetensors import safe_open

    checkpoints = sorted((Path(result.run_dir) / "checkpoints").glob("checkpoint-*"))
    with safe_open(str(checkpoints[-1] / "trainable.safetensors"), "pt") as handle:
        return sum(math.prod(handle.get_slice(k).get_shape()) for k in handle.keys())  # noqa: SIM118 (not iterable)


def _classifier(settings: BenchSettings, num_labels: int):
    if settings.backbone.startswith("tiny-"):
        config = tiny_config(settings.backbone[5:], vocab_size=30522)
        config.num_labels = num_labels
        return AutoModelForSequenceClassification.from_config(config)
    return AutoModelForSequenceClassification.from_pretrained(
        resolve_path(settings.backbone), num_labels=num_labels
    )


def run_peft(name: str, rank: int | None, settings: BenchSettings, seed: int, work: Path) -> dict:
    """PEFT LoRA on query / value (or head only), trained by the plain HF Trainer."""
    torch.manual_seed(seed)
    tokenizer = load_tokenizer(settings.backbone)
    data = load_task(TASK, seed=seed, max_examples=settings.max_examples)
    splits = tokenize_task(data, tokenizer, settings.max_length, 0).remove_columns("task_ids")
    model = _classifier(settings, data.info.num_labels)
    if rank is None:
        for param_name, param in model.named_parameters():
            param.requires_grad_(param_name.startswith("classifier"))
    else:
        model = get_peft_model(
            model,
            LoraConfig(
                r=rank, lora_alpha=2 * rank, target_modules=["query", "value"], task_type="SEQ_CLS"
            ),
        )
    steps = max(1, math.ceil(settings.epochs * len(splits["train"]) / settings.batch_size))
    args = TrainingArguments(
        output_dir=str(work / f"{name}-{seed}"),
        max_steps=steps,
        per_device_train_batch_size=settings.batch_size,
        learning_rate=LR,
        weight_decay=0.1,
        warmup_steps=math.ceil(0.1 * steps),
        lr_scheduler_type="linear",
        seed=seed,
        report_to="none",
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=splits["train"],
        data_collator=MultiTaskCollator(tokenizer),
    )
    started = time.monotonic()
    trainer.train()
    seconds = time.monotonic() - started
    output = trainer.predict(splits["test"])
    accuracy = float((np.argmax(output.predictions, -1) == output.label_ids).mean())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    with tempfile.TemporaryDirectory() as folder:
        if rank is None:
            from safetensors.torch import save_file

            head = {k: v.contiguous() for k, v in model.classifier.state_dict().items()}
            save_file(head, f"{folder}/classifier.safetensors")
        else:
            model.save_pretrained(folder)
        stored = folder_bytes(Path(folder))
    return {
        "accuracy": accuracy,
        "trainable_params": trainable,
        "task_bytes": stored,
        "fp32_eq_per_task": trainable,
        "train_samples_per_s": steps * settings.batch_size / seconds,
        "train_seconds": seconds,
    }


def run(settings: BenchSettings, work: Path, names: list[str] | None = None) -> dict:
    """Every method (or only `names`), each seed; the mean over seeds per method."""
    unknown = sorted(set(names or []) - set(PROPETL_RUNS) - set(PEFT_RUNS))
    if unknown:
        raise SystemExit(f"unknown run(s) {unknown}; have {[*PROPETL_RUNS, *PEFT_RUNS]}")
    out: dict[str, dict] = {}
    for seed in settings.seeds:
        for name, config in PROPETL_RUNS.items():
            if names and name not in names:
                continue
            out.setdefault(name, {})[seed] = run_propetl(name, config, settings, seed, work)
            print(f"[accuracy] {name} seed {seed}: {out[name][seed]['accuracy']:.4f}", flush=True)
        for name, rank in PEFT_RUNS.items():
            if names and name not in names:
                continue
            out.setdefault(name, {})[seed] = run_peft(name, rank, settings, seed, work)
            print(f"[accuracy] {name} seed {seed}: {out[name][seed]['accuracy']:.4f}", flush=True)
    shutil.rmtree(work, ignore_errors=True)
    return {name: _mean_over_seeds(per_seed) for name, per_seed in out.items()}


def _mean_over_seeds(per_seed: dict[int, dict]) -> dict:
    keys = next(iter(per_seed.values())).keys()
    mean = {k: float(np.mean([r[k] for r in per_seed.values()])) for k in keys}
    mean["accuracy_per_seed"] = [r["accuracy"] for r in per_seed.values()]
    return mean

"""Serving many tasks: throughput, task switching, loading a task, mixed-task batches.

ProPETL (one prototype, materialised masks per task) against PEFT LoRA (one adapter per task)
and the bare frozen backbone, with untrained-but-nonzero modules of the paper's shapes (speed
does not depend on what was learned).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from peft.utils.hotswap import hotswap_adapter

from propetl.backbones import load_backbone_model, load_tokenizer
from propetl.checkpoint import load_task
from propetl.config import PropetlConfig, TaskHeadSpec
from propetl.data import load_task as load_task_data
from propetl.model import ProPETLModel

from .accuracy import _classifier
from .common import BenchSettings, median_ms

NUM_TASKS = 5


def _inputs(settings: BenchSettings) -> dict[str, torch.Tensor]:
    tokenizer = load_tokenizer(settings.backbone)
    texts = list(load_task_data("rotten_tomatoes", max_examples=64).splits["test"]["text"])
    texts = (texts * 4)[: settings.batch_size]
    return dict(
        tokenizer(
            texts,
            truncation=True,
            max_length=settings.max_length,
            padding="max_length",
            return_tensors="pt",
        )
    )


def _propetl(settings: BenchSettings, tasks: int = NUM_TASKS) -> ProPETLModel:
    config = PropetlConfig(petl="adapter", bottleneck=64, keep=0.5)
    specs = [TaskHeadSpec(f"task{i}", 2) for i in range(tasks)]
    model = ProPETLModel(
        load_backbone_model(settings.backbone), config, specs, backbone_name=settings.backbone
    )
    with torch.no_grad():
        for name, param in model.banks.named_parameters():
            if ".scores." not in name:
                param.normal_(0, 0.02)
    return model.eval()


def _peft(settings: BenchSettings, tasks: int = NUM_TASKS, folder: Path | None = None):
    base = _classifier(settings, 2)
    # no modules_to_save: PEFT hotswap cannot swap a classifier (its task head)
    config = LoraConfig(
        r=8, lora_alpha=16, target_modules=["query", "value"], init_lora_weights=False
    )
    model = get_peft_model(base, config, adapter_name="task0")
    for i in range(1, tasks):
        model.add_adapter(f"task{i}", config)
    if folder is not None:
        model.save_pretrained(folder)
    return model.eval()


@torch.no_grad()
def throughput(settings: BenchSettings) -> dict:
    inputs = _inputs(settings)
    reps = max(5, settings.reps // 10)
    bare = load_backbone_model(settings.backbone).eval()
    propetl = _propetl(settings, tasks=1)
    propetl.materialise()
    peft = _peft(settings, tasks=1)
    out = {}
    for _ in range(2):  # interleave to share the machine's noise evenly
        bare_ms = median_ms(lambda: bare(**inputs), reps)
        propetl_ms = median_ms(lambda: propetl(**inputs), reps)
        peft_ms = median_ms(lambda: peft(**inputs), reps)
        out.setdefault("bare_ms", []).append(bare_ms)
        out.setdefault("propetl_ms", []).append(propetl_ms)
        out.setdefault("peft_unmerged_ms", []).append(peft_ms)
    merged = peft.merge_and_unload().eval()
    out["peft_merged_ms"] = [median_ms(lambda: merged(**inputs), reps)]
    best = {k: min(v) for k, v in out.items()}
    batch = settings.batch_size
    return {
        "samples_per_s": {k.removesuffix("_ms"): batch / (v / 1e3) for k, v in best.items()},
        "ratio_vs_bare": {k.removesuffix("_ms"): best["bare_ms"] / v for k, v in best.items()},
        "batch": batch,
        "max_length": settings.max_length,
    }


@torch.no_grad()
def switching(settings: BenchSettings) -> dict:
    reps = settings.reps
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model = _propetl(settings)
        model.materialise()
        names = model.task_names
        counter = {"i": 0}

        def switch() -> None:
            counter["i"] += 1
            model.set_task(names[counter["i"] % len(names)])

        propetl_switch = median_ms(switch, reps)
        model.save_pretrained(folder / "propetl")
        served = ProPETLModel.from_pretrained(
            folder / "propetl", backbone=model.backbone, tasks=names[:1]
        )

        def load_one_more() -> None:
            load_task(served, folder / "propetl", "task1")
            served.materialise(["task1"])
            served.remove_task("task1")

        propetl_load = median_ms(load_one_more, max(5, reps // 4))
        peft = _peft(settings, folder=folder / "peft")

        def peft_set() -> None:
            counter["i"] += 1
            peft.set_adapter(f"task{counter['i'] % NUM_TASKS}")

        peft_switch = median_ms(peft_set, reps)
        peft_dir = folder / "peft" / "task1"
        fresh = PeftModel.from_pretrained(
            _classifier(settings, 2), folder / "peft" / "task0", adapter_name="task0"
        ).eval()

        def peft_load() -> None:
            fresh.load_adapter(str(peft_dir), adapter_name="extra")
            fresh.delete_adapter("extra")

        peft_load_ms = median_ms(peft_load, max(5, reps // 4))
        peft_hotswap_ms = median_ms(
            lambda: hotswap_adapter(fresh, str(peft_dir), adapter_name="task0"), max(5, reps // 4)
        )
    return {
        "propetl_switch_ms": propetl_switch,
        "propetl_load_ms": propetl_load,
        "peft_set_adapter_ms": peft_switch,
        "peft_load_adapter_ms": peft_load_ms,
        "peft_hotswap_ms": peft_hotswap_ms,
    }


@torch.no_grad()
def mixed_batch(settings: BenchSettings) -> dict:
    inputs = _inputs(settings)
    batch = inputs["input_ids"].shape[0]
    task_ids = torch.arange(batch) % NUM_TASKS
    reps = max(5, settings.reps // 10)
    model = _propetl(settings)
    model.materialise()
    single = torch.zeros(batch, dtype=torch.long)
    peft = _peft(settings)
    names = [f"task{int(t)}" for t in task_ids]
    peft.set_adapter("task0")
    out: dict[str, list[float]] = {}
    for _ in range(2):
        out.setdefault("propetl_single", []).append(
            median_ms(lambda: model(**inputs, task_ids=single), reps)
        )
        out.setdefault("propetl_mixed", []).append(
            median_ms(lambda: model(**inputs, task_ids=task_ids), reps)
        )
        out.setdefault("peft_single", []).append(median_ms(lambda: peft(**inputs), reps))
        out.setdefault("peft_mixed", []).append(
            median_ms(lambda: peft(**inputs, adapter_names=names), reps)
        )
    best = {k: min(v) for k, v in out.items()}
    return {
        "ms": best,
        "tasks_in_batch": NUM_TASKS,
        "batch": batch,
        "ratio": {
            "propetl": best["propetl_mixed"] / best["propetl_single"],
            "peft": best["peft_mixed"] / best["peft_single"],
        },
    }


def training_speed(settings: BenchSettings) -> dict:
    """Optimizer steps on one fixed batch, ProPETL adapter and PEFT LoRA r8 interleaved, so both
    see the same machine load (the full runs' samples/s also include data loading)."""
    inputs = _inputs(settings)
    labels = torch.arange(settings.batch_size) % 2
    propetl = _propetl(settings, tasks=1).train()
    groups = propetl.parameter_groups()
    propetl_opt = torch.optim.AdamW(
        [
            {"params": groups["scores"], "lr": 3e-3},
            {"params": groups["weights"] + groups["no_decay"]},
        ],
        lr=1e-3,
    )
    base = _classifier(settings, 2)
    peft = get_peft_model(
        base, LoraConfig(r=8, lora_alpha=16, target_modules=["query", "value"], task_type="SEQ_CLS")
    ).train()
    peft_opt = torch.optim.AdamW([p for p in peft.parameters() if p.requires_grad], lr=1e-3)

    def step(model, optimizer) -> None:
        loss = model(**inputs, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    reps = max(3, settings.reps // 20)
    times: dict[str, list[float]] = {"propetl_adapter": [], "peft_lora_r8": []}
    for _ in range(3):
        times["propetl_adapter"].append(median_ms(lambda: step(propetl, propetl_opt), reps, 1))
        times["peft_lora_r8"].append(median_ms(lambda: step(peft, peft_opt), reps, 1))
    best = {k: min(v) for k, v in times.items()}
    return {
        "step_ms": best,
        "samples_per_s": {k: settings.batch_size / (v / 1e3) for k, v in best.items()},
    }

"""Living prototypes: a task added onto a trained prototype against joint and single training.

Per seed: a prototype trained on bbc_news + tweet_sentiment, then rotten_tomatoes added onto it
(its masks and head only; the prototype and the old tasks frozen, their files verified by
sha256); compared with a joint 3-task run and a single-task rotten_tomatoes run of the same
method. Also the mask distances between tasks (related: rotten_tomatoes vs tweet_sentiment,
both sentiment; unrelated: either vs bbc_news) and from the common seeded start.
"""

from __future__ import annotations

import json
import math
import shutil
import statistics
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from propetl.config import DEFAULT_MASK_LR, PropetlConfig, TrainConfig
from propetl.continual import changed_files, file_hashes, onto_config, prototype_hashes, read_base
from propetl.masks import hamming
from propetl.model import ProPETLModel
from propetl.training import train

from .common import folder_bytes

OLD = ["bbc_news", "tweet_sentiment"]
NEW = "rotten_tomatoes"


@dataclass(frozen=True)
class ContinualSettings:
    """Sized for a 2-core CPU (about 6 minutes of training per seed when the machine is
    quiet): every split capped at 1,500 examples, 48 tokens, batches of 32, for about 100 steps
    per task. Each seed's figures are saved as soon as they exist (`cache`), so a rerun
    resumes and a stopped run still reports its seeds."""

    backbone: str = "minilm-l6"
    seeds: tuple[int, ...] = (1, 2, 3)
    max_examples: int = 1500  # each split of each task (tweet_sentiment has 30k train texts)
    proto_steps: int = 120  # bbc_news + tweet_sentiment
    added_steps: int = 100  # rotten_tomatoes onto the frozen prototype
    joint_steps: int = 300  # 3 tasks, uniform sampling: about 100 per task
    single_steps: int = 100
    batch_size: int = 32
    max_length: int = 48
    lr: float = 2e-3
    mask_lr: float = DEFAULT_MASK_LR["adapter"]  # every run's: prototype, added, joint, single
    smoke: bool = False

    @classmethod
    def smoke_settings(cls) -> ContinualSettings:
        return cls(
            backbone="tiny-bert",
            seeds=(1, 2),
            max_examples=24,
            proto_steps=3,
            added_steps=3,
            joint_steps=3,
            single_steps=3,
            batch_size=8,
            max_length=32,
            smoke=True,
        )


def _job(tasks: list[str], steps: int, seed: int, s: ContinualSettings) -> TrainConfig:
    return TrainConfig(
        backbone=s.backbone,
        tasks=tasks,
        lr=s.lr,
        mask_lr=s.mask_lr,
        seed=seed,
        propetl=PropetlConfig(petl="adapter", bottleneck=64, keep=0.5, seed=seed),
        max_steps=steps,
        batch_size=s.batch_size,
        max_length=s.max_length,
        max_examples=s.max_examples,
        eval_every=10**6,
        sampling="uniform",
    )


def mask_distances(model_dir: Path) -> dict:
    """Mean Hamming distance (all masked tensors, all layers) between every pair of tasks and
    of each task from the common seeded start."""
    model = ProPETLModel.from_pretrained(model_dir, backbone=None)
    tasks = model.task_names
    pairs, start = {}, {}
    with torch.no_grad():
        masks = {t: {} for t in tasks}
        starts = {t: {} for t in tasks}
        for bank_name, bank in model.banks.items():
            for t in tasks:
                for name, m in bank.masks(t).items():
                    masks[t][f"{bank_name}.{name}"] = m
                for name, m in bank.start_masks(t).items():
                    starts[t][f"{bank_name}.{name}"] = m

        def dist(a: dict, b: dict) -> float:
            total = sum(a[k].numel() for k in a)
            return sum(hamming(a[k], b[k]) * a[k].numel() for k in a) / total

        for i, a in enumerate(tasks):
            start[a] = dist(masks[a], starts[a])
            for b in tasks[i + 1 :]:
                pairs[f"{a}|{b}"] = dist(masks[a], masks[b])
    return {"pairs": pairs, "from_start": start}


def _pair(pairs: dict, a: str, b: str) -> float:
    return pairs.get(f"{a}|{b}", pairs.get(f"{b}|{a}", math.nan))


def _stats(values: list[float]) -> dict:
    """Mean and standard error of the finite values (None when there are none)."""
    finite = [v for v in values if math.isfinite(v)]
    values = [v if math.isfinite(v) else None for v in values]
    if not finite:
        return {"mean": None, "se": None, "values": values}
    mean = statistics.fmean(finite)
    se = statistics.stdev(finite) / math.sqrt(len(finite)) if len(finite) > 1 else 0.0
    return {"mean": mean, "se": se, "values": values}


def run(settings: ContinualSettings, work: Path, cache: Path | None = None) -> dict:
    """Every seed's runs (a seed already in `cache` with the same settings is reused)."""
    rows = []
    for seed in settings.seeds:
        saved = cache / f"seed-{seed}.json" if cache is not None else None
        if saved is not None and saved.is_file():
            row = json.loads(saved.read_text())
            if row.get("settings") == _settings_dict(settings):
                rows.append(row)
                continue
        row = _seed(settings, seed, work)
        row["settings"] = _settings_dict(settings)
        if saved is not None:
            saved.parent.mkdir(parents=True, exist_ok=True)
            saved.write_text(json.dumps(row, indent=2))
        rows.append(row)
    return summarise(rows, settings)


def _settings_dict(settings: ContinualSettings) -> dict:
    out = dict(settings.__dict__)
    out.pop("seeds")
    out.pop("smoke")
    return out


def _seed(settings: ContinualSettings, seed: int, work: Path) -> dict:
    started = time.monotonic()
    proto = train(
        _job(OLD, settings.proto_steps, seed, settings), work / f"proto-{seed}", resume=False
    )
    base = read_base(proto.model_dir)
    before_all = file_hashes(base.directory)
    old = prototype_hashes(base.directory)
    config = onto_config(
        base,
        {
            "tasks": [NEW],
            "lr": settings.lr,
            "seed": seed,
            "mask_lr": settings.mask_lr,
            "max_steps": settings.added_steps,
            "batch_size": settings.batch_size,
            "max_length": settings.max_length,
            "max_examples": settings.max_examples,
            "eval_every": 10**6,
        },
    )
    added = train(config, work / f"added-{seed}", resume=False, onto=base.directory)
    added_dir = Path(added.model_dir)
    unchanged = changed_files(old, added_dir) == [] and file_hashes(base.directory) == before_all
    joint = train(
        _job([*OLD, NEW], settings.joint_steps, seed, settings),
        work / f"joint-{seed}",
        resume=False,
    )
    single = train(
        _job([NEW], settings.single_steps, seed, settings), work / f"single-{seed}", resume=False
    )
    row = {
        "seed": seed,
        "added_acc": added.test_metrics[NEW]["accuracy"],
        "joint_acc": joint.test_metrics[NEW]["accuracy"],
        "single_acc": single.test_metrics[NEW]["accuracy"],
        "old_acc": {t: proto.test_metrics[t]["accuracy"] for t in OLD},
        "joint_old_acc": {t: joint.test_metrics[t]["accuracy"] for t in OLD},
        "added_bytes": folder_bytes(added_dir / "tasks" / NEW),
        "added_mask_bytes": (added_dir / "tasks" / NEW / "masks.safetensors").stat().st_size,
        "prototype_bytes": (added_dir / "prototype.safetensors").stat().st_size,
        "old_tasks_unchanged": unchanged,
        "distances_added": mask_distances(added_dir),
        "distances_joint": mask_distances(Path(joint.model_dir)),
        "seconds": time.monotonic() - started,
    }
    print(
        f"[continual] seed {seed}: added {row['added_acc']:.4f} joint "
        f"{row['joint_acc']:.4f} single {row['single_acc']:.4f} bytes "
        f"{row['added_bytes']} unchanged {unchanged} ({row['seconds']:.0f} s)",
        flush=True,
    )
    for name in ("proto", "added", "joint", "single"):
        shutil.rmtree(work / f"{name}-{seed}", ignore_errors=True)
    return row


def summarise(rows: list[dict], settings: ContinualSettings) -> dict:
    out: dict = {
        "settings": {**settings.__dict__, "seeds": [r["seed"] for r in rows]},
        "tasks": {"prototype": OLD, "added": NEW},
        "runs": rows,
    }
    for key in ("added_acc", "joint_acc", "single_acc"):
        out[key] = _stats([r[key] for r in rows])
    out["seconds"] = sum(r["seconds"] for r in rows)
    out["added_bytes"] = max(r["added_bytes"] for r in rows)
    out["added_mask_bytes"] = max(r["added_mask_bytes"] for r in rows)
    out["old_tasks_unchanged"] = all(r["old_tasks_unchanged"] for r in rows)
    gap = [r["joint_acc"] - r["added_acc"] for r in rows]
    out["gap_joint_minus_added"] = _stats(gap)
    out["target_met"] = (
        100 * out["gap_joint_minus_added"]["mean"] <= 1.5 and out["added_bytes"] < 45_000
    )
    out["majority_acc"] = _majority(settings)
    for kind in ("added", "joint"):
        related = [_pair(r[f"distances_{kind}"]["pairs"], NEW, "tweet_sentiment") for r in rows]
        unrelated = [_pair(r[f"distances_{kind}"]["pairs"], NEW, "bbc_news") for r in rows]
        old_pair = [
            _pair(r[f"distances_{kind}"]["pairs"], "tweet_sentiment", "bbc_news") for r in rows
        ]
        out[f"distance_{kind}"] = {
            "rotten_vs_tweet": _stats(related),
            "rotten_vs_bbc": _stats(unrelated),
            "tweet_vs_bbc": _stats(old_pair),
            "from_start": {
                t: _stats([r[f"distances_{kind}"]["from_start"][t] for r in rows])
                for t in [*OLD, NEW]
            },
            "related_closer_in_every_seed": all(
                a < b for a, b in zip(related, unrelated, strict=True)
            ),
            # observed / expected if each task's moves from the start were independent
            # (P(differ) = p + q - 2pq): below 1, the two moved alike; compares pairs fairly
            # when one task moved further from the start than another
            "rotten_vs_tweet_vs_independent": _stats(_relative(rows, kind, "tweet_sentiment")),
            "rotten_vs_bbc_vs_independent": _stats(_relative(rows, kind, "bbc_news")),
        }
    return out


def _relative(rows: list[dict], kind: str, other: str) -> list[float]:
    out = []
    for r in rows:
        d = r[f"distances_{kind}"]
        p, q = d["from_start"][NEW], d["from_start"][other]
        expected = p + q - 2 * p * q
        out.append(_pair(d["pairs"], NEW, other) / expected if expected > 0 else math.nan)
    return out


def _majority(settings: ContinualSettings) -> float:
    """Share of the most frequent class in the (capped) rotten_tomatoes test split."""
    from propetl.data import load_task

    labels = load_task(NEW, seed=42, max_examples=settings.max_examples).splits["test"]["label"]
    return max(labels.count(v) for v in set(labels)) / len(labels) if labels else math.nan


def smoke(work: Path) -> dict:
    return run(ContinualSettings.smoke_settings(), work)


def with_seeds(settings: ContinualSettings, seeds: tuple[int, ...]) -> ContinualSettings:
    return replace(settings, seeds=seeds)

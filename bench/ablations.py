"""The paper's two ablations on rotten_tomatoes with the ProPETL adapter.

- keep-ratio sweep with learned masks (are small PETL modules over-parameterised?), against
  the ordinary adapter (sharing "none");
- frozen random masks (`masks="random"`, never trained) against learned masks at the same
  keep ratio (do learned masks find the important weights?).

Same settings as the accuracy benchmark's ProPETL adapter (bottleneck 64, lr, batch, length,
one whole epoch), so its learned keep-0.5 adapter and its ordinary adapter are reused rather
than trained again (about 3 minutes a run on 2 cores). The test split is always whole. Each
finished run is saved at once, so an interrupted part resumes where it stopped, and the runs go
in order of importance (the learned / random pairs first).
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

from safetensors import safe_open

from propetl.banks import seeded_generator
from propetl.config import DEFAULT_MASK_LR, PropetlConfig
from propetl.data import load_task
from propetl.masks import random_mask, unpack_bits

from .accuracy import LR, PROPETL_RUNS, TASK, run_propetl
from .common import RESULTS, BenchSettings, machine, write_json

KEEPS = (0.05, 0.1, 0.3, 0.5, 0.7, 1.0)
RANDOM_KEEPS = (0.1, 0.3, 0.5)
SMOKE_KEEPS, SMOKE_RANDOM_KEEPS = (0.1,), (0.1,)
BOTTLENECK = 64
REFERENCE = "none_adapter"
#: Runs of this part that the accuracy benchmark makes alike (its run names).
REUSED = {REFERENCE: "none_adapter", "learned_0.5": "propetl_adapter"}


def run_names(settings: BenchSettings) -> dict[str, PropetlConfig]:
    """Every run of the part, by name ("learned_0.3", "random_0.3", the reference)."""
    keeps, random_keeps = (
        (SMOKE_KEEPS, SMOKE_RANDOM_KEEPS) if settings.smoke else (KEEPS, RANDOM_KEEPS)
    )

    def learned(k: float) -> PropetlConfig:
        return PropetlConfig(petl="adapter", bottleneck=BOTTLENECK, keep=k)

    runs: dict[str, PropetlConfig] = {}
    for i, k in enumerate(random_keeps):  # most telling first: small-keep pairs, the full mask
        runs[f"learned_{k:g}"] = learned(k)
        runs[f"random_{k:g}"] = replace(learned(k), masks="random")
        if i == 1 and 1.0 in keeps:
            runs["learned_1"] = learned(1.0)
    runs[REFERENCE] = PropetlConfig(petl="adapter", bottleneck=BOTTLENECK, sharing="none")
    for k in sorted(keeps):
        runs.setdefault(f"learned_{k:g}", learned(k))
    return runs


def describe(settings: BenchSettings, seed: int) -> dict:
    """The settings that decide the figures (a saved file with others is not resumed)."""
    sizes = load_task(TASK, seed=seed, max_examples=settings.max_examples).sizes()
    steps = max(1, math.ceil(settings.epochs * sizes["train"] / settings.batch_size))
    return {
        "train_examples_seen": steps * settings.batch_size,
        "task": TASK,
        "backbone": settings.backbone,
        "petl": "adapter",
        "bottleneck": BOTTLENECK,
        "lr": LR,
        "mask_lr": DEFAULT_MASK_LR["adapter"],
        "epochs": settings.epochs,
        "batch_size": settings.batch_size,
        "max_length": settings.max_length,
        "max_examples": settings.max_examples,
        "seed": seed,
        "split_sizes": sizes,
    }


def binomial_se(accuracy: float, n: int) -> float:
    """Standard error of an accuracy measured on n independent test examples."""
    return math.sqrt(accuracy * (1 - accuracy) / n)


def run(settings: BenchSettings, work: Path, accuracy_file: Path | None = None) -> dict:
    """Every run not already in `settings.out / ablations.json` with the same settings; the
    reference is taken from the accuracy benchmark's results when they were made alike."""
    seed = settings.seeds[0]
    setup = describe(settings, seed)
    saved_path = settings.out / "ablations.json"
    saved = json.loads(saved_path.read_text()) if saved_path.is_file() else {}
    runs: dict[str, dict] = saved.get("runs", {}) if saved.get("settings") == setup else {}
    planned = run_names(settings)
    if accuracy_file and accuracy_file.is_file():
        runs = {**reused_runs(json.loads(accuracy_file.read_text()), planned, settings), **runs}
    for name, config in planned.items():
        if name in runs:
            continue
        config = replace(config, seed=seed)
        row = run_propetl(name, config, settings, seed, work)
        if config.masked and config.masks == "learned":
            row["kept_moved"] = kept_moved(work / f"{name}-{seed}" / "model", config)
        runs[name] = {**row, **_mask_fields(config)}
        print(
            f"[ablations] {name}: {row['accuracy']:.4f} in {row['train_seconds']:.0f} s", flush=True
        )
        write_json(saved_path, _result(setup, runs, settings, complete=False))
    return _result(setup, runs, settings, complete=True)


def _mask_fields(config: PropetlConfig) -> dict:
    """How a run's row names its masks (none for the ordinary adapter)."""
    return {
        "keep": config.keep_ratio if config.masked else None,
        "masks": config.masks if config.masked else None,
    }


def reused_runs(
    accuracy: dict, planned: dict[str, PropetlConfig], settings: BenchSettings
) -> dict[str, dict]:
    """The accuracy benchmark's runs that are exactly runs of this part (same config, its one
    seed, default settings), so they need not be trained again."""
    if replace(settings, out=RESULTS) != BenchSettings():
        return {}
    out = {}
    for name, source in REUSED.items():
        row, config = accuracy.get(source), planned.get(name)
        if row is None or config is None or PROPETL_RUNS[source] != config:
            continue
        if config.masked and row.get("mask_lr") != DEFAULT_MASK_LR[config.petl]:
            continue  # its masks trained at an earlier default rate
        if row.get("accuracy_per_seed") == [row["accuracy"]]:  # measured with this one seed
            out[name] = {**row, **_mask_fields(config), "reused_from": f"accuracy.json ({source})"}
    return out


def kept_moved(model_dir: Path, config: PropetlConfig) -> float:
    """Fraction of a learned task's kept entries that its random starting mask did not keep
    (the starting mask is what `masks="random"` freezes: same seed, same draw)."""
    manifest = json.loads((model_dir / "propetl_config.json").read_text())
    moved = kept = 0.0
    with safe_open(str(model_dir / "tasks" / TASK / "masks.safetensors"), "pt") as handle:
        metadata = handle.metadata()
        for bank, info in manifest["banks"].items():
            generator = seeded_generator(config.seed, bank, "task", TASK)
            for name in info["masked"]:
                key = f"{bank}.{name}"
                shape = tuple(json.loads(metadata[key]))
                final = unpack_bits(handle.get_tensor(key), shape).bool()
                start = random_mask(shape, config.keep_ratio, generator).bool()
                moved += float((final & ~start).sum())
                kept += float(final.sum())
    return moved / kept


def _result(setup: dict, runs: dict, settings: BenchSettings, complete: bool) -> dict:
    n = setup["split_sizes"]["test"]
    return {
        "settings": setup,
        "machine": machine(),
        "complete": complete,
        "test_examples": n,
        "runs": runs,
        "comparisons": compare(runs, n),
        "missing": [name for name in run_names(settings) if name not in runs],
    }


def compare(runs: dict, n: int) -> dict:
    """Learned minus random accuracy per keep ratio, with the standard error of the
    difference of two independent accuracies on n examples (an upper bound: both are measured
    on the same test split, which correlates them)."""
    out = {}
    for name, row in runs.items():
        if not name.startswith("random_"):
            continue
        keep = name.split("_", 1)[1]
        learned = runs.get(f"learned_{keep}")
        if learned is None:
            continue
        se = math.hypot(binomial_se(learned["accuracy"], n), binomial_se(row["accuracy"], n))
        out[keep] = {
            "learned": learned["accuracy"],
            "random": row["accuracy"],
            "difference": learned["accuracy"] - row["accuracy"],
            "se_difference": se,
        }
    return out

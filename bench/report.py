"""Plots and the Markdown report of the benchmark results."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from .common import RESULTS, reading
from .report_ablations import ablation_lines, ablations_plot
from .report_continual import continual_lines
from .report_pareto import pareto_lines
from .report_serve import serve_load_lines

GOALS = [  # (summary key, label, goal text, check)
    (
        "rt_acc.propetl_adapter",
        "RT test accuracy, ProPETL adapter",
        ">= best PEFT LoRA",
        lambda f: (
            f["rt_acc.propetl_adapter"]
            >= max(f["rt_acc.peft_lora_r8"], f["rt_acc.peft_lora_r32"]) - 1e-9
        ),
    ),
    (
        "task_bytes.propetl_adapter_marginal",
        "bytes of one more task (masks)",
        "<= 1/8 of PEFT LoRA r8",
        lambda f: f["task_bytes.propetl_adapter_marginal"] <= f["task_bytes.peft_lora_r8"] / 8,
    ),
    (
        "infer_ratio.propetl_vs_bare",
        "inference speed vs bare backbone",
        ">= 0.97x",
        lambda f: f["infer_ratio.propetl_vs_bare"] >= 0.97,
    ),
    (
        "switch_ms.propetl_loaded",
        "switch between loaded tasks (ms)",
        "<= 0.1 ms",
        lambda f: f["switch_ms.propetl_loaded"] <= 0.1,
    ),
    (
        "load_ms.propetl_disk",
        "load one more task from disk (ms)",
        "<= 2 ms",
        lambda f: f["load_ms.propetl_disk"] <= 2,
    ),
    (
        "mixed5_ratio.propetl",
        "mixed batch of 5 tasks / single",
        "<= 1.05x",
        lambda f: f["mixed5_ratio.propetl"] <= 1.05,
    ),
    (
        "train_sps.propetl_adapter",
        "training samples/s (full 1-epoch runs)",
        ">= 0.9x PEFT LoRA r8",
        lambda f: f["train_sps.propetl_adapter"] >= 0.9 * f["train_sps.peft_lora_r8"],
    ),
    (
        "train_sps_step.propetl_adapter",
        "training samples/s (same batch, interleaved)",
        ">= 0.9x PEFT LoRA r8",
        lambda f: f["train_sps_step.propetl_adapter"] >= 0.9 * f["train_sps_step.peft_lora_r8"],
    ),
]
PEFT_FIGURE = {
    "rt_acc.propetl_adapter": "rt_acc.peft_lora_r32",
    "task_bytes.propetl_adapter_marginal": "task_bytes.peft_lora_r8",
    "infer_ratio.propetl_vs_bare": "infer_ratio.peft_unmerged_vs_bare",
    "switch_ms.propetl_loaded": "switch_ms.peft_set_adapter",
    "load_ms.propetl_disk": "load_ms.peft_load_adapter",
    "mixed5_ratio.propetl": "mixed5_ratio.peft",
    "train_sps.propetl_adapter": "train_sps.peft_lora_r8",
    "train_sps_step.propetl_adapter": "train_sps_step.peft_lora_r8",
}


def plot_all(results: dict, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    if "accuracy" in results:
        paths.append(_accuracy_vs_bytes(results["accuracy"], out / "accuracy_vs_bytes.png"))
    if "serving" in results:
        paths.append(_serving(results["serving"], out / "serving.png"))
    if "multitask" in results:
        paths.append(_multitask(results["multitask"], out / "multitask.png"))
    if results.get("ablations", {}).get("runs"):
        paths.append(ablations_plot(results["ablations"], out / "ablations_keep.png"))
    return paths


def _accuracy_vs_bytes(acc: dict, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(8.5, 4.5))
    markers = {"propetl": "o", "none": "s", "peft": "^", "head": "D"}
    colors = plt.get_cmap("tab10")
    for i, (name, row) in enumerate(acc.items()):
        ax.scatter(
            row["task_bytes"],
            100 * row["accuracy"],
            s=60,
            color=colors(i % 10),
            marker=markers.get(name.split("_")[0], "o"),
            label=f"{name} ({100 * row['accuracy']:.1f} %)",
        )
    ax.set_xscale("log")
    ax.set_xlabel("stored bytes per task (log scale; ProPETL: the task's mask file)")
    ax.set_ylabel("rotten_tomatoes test accuracy (%)")
    ax.set_title("Accuracy against storage per task")
    ax.grid(alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _serving(serve: dict, path: Path) -> Path:
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    rate = serve["throughput"]["samples_per_s"]
    axes[0].bar(list(rate), list(rate.values()), color=["gray", "tab:red", "tab:blue", "tab:cyan"])
    axes[0].set_title("inference samples/s (batch 32)")
    axes[0].tick_params(axis="x", rotation=20)
    sw = serve["switching"]
    labels = [
        "ProPETL switch",
        "ProPETL load",
        "PEFT set_adapter",
        "PEFT load_adapter",
        "PEFT hotswap",
    ]
    values = [
        sw["propetl_switch_ms"],
        sw["propetl_load_ms"],
        sw["peft_set_adapter_ms"],
        sw["peft_load_adapter_ms"],
        sw["peft_hotswap_ms"],
    ]
    axes[1].bar(labels, values, color=["tab:red", "tab:red", "tab:blue", "tab:blue", "tab:blue"])
    axes[1].set_yscale("log")
    axes[1].set_title("task switching / loading (ms, median, log)")
    axes[1].tick_params(axis="x", rotation=30)
    ratio = serve["mixed"]["ratio"]
    axes[2].bar(
        ["ProPETL", "PEFT"], [ratio["propetl"], ratio["peft"]], color=["tab:red", "tab:blue"]
    )
    axes[2].axhline(1.0, color="black", lw=0.8)
    axes[2].set_title("mixed batch (5 tasks) time / single-task batch")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _multitask(multi: dict, path: Path) -> Path:
    tasks = multi["tasks"]
    fig, ax = plt.subplots(figsize=(7, 4))
    xs = range(len(tasks))
    ax.bar(
        [x - 0.25 for x in xs],
        [100 * multi["shared"][t]["accuracy"] for t in tasks],
        0.25,
        label="one shared prototype",
        color="tab:red",
    )
    ax.bar(
        list(xs),
        [100 * multi["separate"][t]["accuracy"] for t in tasks],
        0.25,
        label="separate runs",
        color="tab:orange",
    )
    ax.bar(
        [x + 0.25 for x in xs],
        [100 * (multi["majority_baseline"][t] or 0) for t in tasks],
        0.25,
        label="majority class",
        color="tab:gray",
    )
    ax.set_xticks(list(xs), tasks)
    ax.set_ylabel("test accuracy (%)")
    ax.legend()
    ax.set_title("Multi-task: one prototype for three tasks")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def generative_lines(gen: dict) -> list[str]:
    """The generative section: ProPETL on a decoder LLM against the untuned model."""
    cfg, prop = gen["config"], gen["config"]["propetl"]
    lines = [
        f"## Generative: {gen['backbone']} writes `{gen['task']}` headlines",
        "",
        f"ProPETL-{prop['petl']} (q and v, r {prop['lora_r']}, keep {prop['keep']}) trained "
        f"{cfg['max_steps']} steps of batch {cfg['batch_size']} (source cut to "
        f"{cfg['max_length']} tokens) in {gen['train_seconds'] / 60:.1f} min on "
        f"{gen['machine']}; greedy generation on {gen['test_examples']} test articles "
        f"(splits capped at {cfg['max_examples'] or 'all'} examples, a seeded prefix), "
        "same prompt for both rows (`<article>\\nHeadline:`).",
        "",
        "| model | ROUGE-1 | ROUGE-2 | ROUGE-L |",
        "|---|---|---|---|",
    ]
    for label, key in (("untuned", "untuned"), ("ProPETL", "propetl_lora")):
        row = gen[key]
        lines.append(
            f"| {label} | {100 * row['rouge1']:.2f} | {100 * row['rouge2']:.2f} | "
            f"{100 * row['rougeL']:.2f} |"
        )
    storage = gen["storage"]
    lines += [
        "",
        f"Per-task storage: {gen['task_mask_bytes'] / 1024:.1f} KiB of masks over a "
        f"shared prototype of {storage['prototype_params']:,} parameters; in the paper's "
        f"accounting ({storage['percent_of_backbone']:.3f} % of the backbone) that is "
        f"{100 * storage['ratio_to_baseline']:.1f} % of an ordinary LoRA of the same shape "
        "in every layer.",
        "",
        "| reference | untuned | ProPETL |",
        "|---|---|---|",
    ]
    for sample in gen["samples"][:3]:
        cells = [
            sample[k].replace("|", "/").replace("\n", " ")[:90]
            for k in ("reference", "untuned", "propetl")
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    return lines


def write_markdown(results: dict, flat: dict, plots: list[Path], path: Path) -> None:
    lines = [
        "# Benchmarks: ProPETL against HF PEFT",
        "",
        "Generated by `make bench` (`python -m bench.run_all`) from `bench/results/*.json`.",
        f"Machine: {flat['machine']}. Seeds: {flat['seeds']}. Bundled `minilm-l6`, max "
        "length 64, batch 32, 1 epoch, lr 1e-3 for every method.",
        "",
    ]
    if all(k in flat for k, *_ in GOALS) and all(v in flat for v in PEFT_FIGURE.values()):
        lines += [
            "## Goals",
            "",
            "| figure | ProPETL | PEFT (same run) | goal | met |",
            "|---|---|---|---|---|",
        ]
        for key, label, goal, check in GOALS:
            lines.append(
                f"| {label} | {_fmt(flat[key])} | {_fmt(flat[PEFT_FIGURE[key]])} | "
                f"{goal} | {'yes' if check(flat) else 'no'} |"
            )
        lines.append("")
    if "accuracy" in results:
        lines += [
            "## Accuracy and storage (rotten_tomatoes, test split)",
            "",
            "| method | test acc. | trainable params | bytes per task on disk | "
            "fp32-eq per task (paper) | train samples/s |",
            "|---|---|---|---|---|---|",
        ]
        for name, row in results["accuracy"].items():
            lines.append(
                f"| {name} | {100 * row['accuracy']:.2f} % | "
                f"{int(row['trainable_params']):,} | {int(row['task_bytes']):,} | "
                f"{row['fp32_eq_per_task']:,.0f} | {row['train_samples_per_s']:.1f} |"
            )
        lines += [
            "",
            "ProPETL's bytes per task are the task's bit-packed mask file; its shared "
            "prototype and each task's head (stored apart) are listed in "
            "`bench/results/accuracy.json`.",
            "",
            *reading("accuracy"),
        ]
    if "multitask" in results:
        multi = results["multitask"]
        lines += [
            "## Multi-task",
            "",
            f"Each split capped at {multi['max_examples_per_split']} examples.",
            "",
            "| task | shared prototype | separate run | majority class | marginal bytes |",
            "|---|---|---|---|---|",
        ]
        for task in multi["tasks"]:
            lines.append(
                f"| {task} | {100 * multi['shared'][task]['accuracy']:.2f} % | "
                f"{100 * multi['separate'][task]['accuracy']:.2f} % | "
                f"{100 * (multi['majority_baseline'][task] or 0):.2f} % | "
                f"{multi['marginal_task_bytes'][task]:,} |"
            )
        lines += [
            "",
            f"Total stored: shared {multi['shared_total_bytes']:,} bytes, separate "
            f"{multi['separate_total_bytes']:,} bytes.",
            "",
        ]
    if "serving" in results:
        serve = results["serving"]
        lines += ["## Serving", "", "| figure | value |", "|---|---|"]
        for key, value in serve["throughput"]["samples_per_s"].items():
            lines.append(f"| samples/s, {key} | {value:.1f} |")
        for key, value in serve["switching"].items():
            lines.append(f"| {key} | {value:.4f} |")
        for key, value in serve["mixed"]["ratio"].items():
            lines.append(f"| mixed 5-task batch / single, {key} | {value:.3f} |")
        lines.append("")
    if "storage" in results:
        lines += [
            "## Storage accounting at paper scale",
            "",
            "| backbone | PETL | ProPETL % of backbone | ordinary % | ratio | paper |",
            "|---|---|---|---|---|---|",
        ]
        for backbone, kinds in results["storage"].items():
            for kind, row in kinds.items():
                paper = row["paper_percent"]
                lines.append(
                    f"| {backbone} | {kind} | {row['propetl_percent']:.3f} % | "
                    f"{row['ordinary_percent']:.3f} % | {100 * row['ratio']:.1f} % | "
                    f"{paper['propetl']} % vs {paper['none']} % |"
                )
        lines.append("")
    if results.get("ablations", {}).get("runs"):
        lines += ablation_lines(results["ablations"], results.get("accuracy"))
    if results.get("serve_load"):
        lines += serve_load_lines(results["serve_load"])
    if results.get("generative"):
        lines += generative_lines(results["generative"])
    if results.get("continual"):
        lines += continual_lines(results["continual"])
    if results.get("pareto"):
        stats = RESULTS / "pareto_stats.json"
        lines += pareto_lines(
            results["pareto"], json.loads(stats.read_text()) if stats.is_file() else None
        )
    lines += [
        "## How to read these figures",
        "",
        "- One seed (42) per method: differences of a few tenths of a point are within seed noise.",
        "- Every method uses the same learning rate (1e-3), schedule and data; ProPETL's "
        "mask scores train at the rate each run records (`mask_lr`; runs without one "
        "used the public scripts' rates: 3e-3 adapter, 3e-2 LoRA, 1e-4 prefix).",
        "- Training samples/s of the full runs include data loading and can be disturbed "
        "by other work on a shared machine; the interleaved measurement (same batch, "
        "alternating methods) is the like-for-like comparison.",
        "- Serving figures use the paper's module shapes with nonzero weights; speed does "
        "not depend on what was learned.",
        "",
    ]
    for plot in plots:
        lines.append(f"![{plot.stem}](../bench/results/{plot.name})")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")

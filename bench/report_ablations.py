"""The ablations' plot and Markdown section (keep-ratio sweep, frozen random masks), with a
plain verdict on each of the paper's claims from the measured figures and their noise."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from .common import reading


def ablations_plot(abl: dict, path: Path) -> Path:
    """Accuracy against keep ratio: learned and frozen random masks, the ordinary adapter."""
    runs, n = abl["runs"], abl["test_examples"]
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for kind, color in (("learned", "tab:red"), ("random", "tab:gray")):
        rows = sorted(
            (r["keep"], r["accuracy"]) for name, r in runs.items() if name.startswith(f"{kind}_")
        )
        if rows:
            keeps, accs = zip(*rows, strict=True)
            errors = [100 * math.sqrt(a * (1 - a) / n) for a in accs]
            ax.errorbar(
                keeps,
                [100 * a for a in accs],
                yerr=errors,
                color=color,
                marker="o",
                capsize=3,
                label=f"{kind} masks (+/- 1 s.e.)",
            )
    if "none_adapter" in runs:
        ax.axhline(
            100 * runs["none_adapter"]["accuracy"],
            color="tab:blue",
            ls="--",
            label="ordinary adapter, one module per layer (sharing none)",
        )
    ax.set_xscale("log")
    ax.set_xticks([0.05, 0.1, 0.3, 0.5, 0.7, 1.0], ["0.05", "0.1", "0.3", "0.5", "0.7", "1"])
    ax.set_xlabel("keep ratio (fraction of the prototype each mask keeps; log scale)")
    ax.set_ylabel("rotten_tomatoes test accuracy (%)")
    ax.set_title("ProPETL adapter: keep ratio, learned vs frozen random masks")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def ablation_lines(abl: dict, accuracy: dict | None = None) -> list[str]:
    """The ablations section: tables, and whether each of the paper's claims held here.
    `accuracy` (the accuracy part's results) gives whole-epoch figures for scale."""
    runs, n, setup = abl["runs"], abl["test_examples"], abl["settings"]
    typical = sum(r["accuracy"] for r in runs.values()) / len(runs)
    se = 100 * math.sqrt(typical * (1 - typical) / n)
    lines = [
        "## Ablations: keep ratio and frozen random masks",
        "",
        f"ProPETL adapter (bottleneck {setup['bottleneck']}) on {setup['task']}, "
        f"`{setup['backbone']}`, {_examples_seen(setup)}, batch {setup['batch_size']}, "
        f"max length {setup['max_length']}, lr {setup['lr']:g}, mask lr "
        f"{setup['mask_lr']:g}, seed {setup['seed']}"
        f"{'; whole splits' if setup['max_examples'] is None else '; splits capped'}. "
        f"One seed: on {n} test examples the binomial standard error of an accuracy near "
        f"{100 * typical:.0f} % is {se:.1f} points, so two runs differing by less than about "
        f"{2 * math.sqrt(2) * se:.1f} points (2 s.e. of a difference) are within noise.",
        "",
        "| run | masks | keep | test acc. | kept entries moved from the random start | "
        "bytes per task on disk | train s |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in sorted(
        runs.items(),
        key=lambda kv: (kv[1]["keep"] is None, kv[1].get("masks") or "", kv[1]["keep"] or 0),
    ):
        label = "ordinary adapter (sharing none)" if name == "none_adapter" else name
        if row.get("reused_from"):
            label += f", from `{row['reused_from']}`"
        keep = "-" if row["keep"] is None else f"{row['keep']:g}"
        moved = "-" if row.get("kept_moved") is None else f"{100 * row['kept_moved']:.1f} %"
        lines.append(
            f"| {label} | {row.get('masks') or '-'} | {keep} | "
            f"{100 * row['accuracy']:.2f} % | {moved} | {int(row['task_bytes']):,} | "
            f"{row['train_seconds']:.0f} |"
        )
    if abl.get("missing"):
        lines += ["", f"Not run (time ran out): {', '.join(abl['missing'])}."]
    full = accuracy or {}
    if setup["epochs"] < 1 and "propetl_adapter" in full and "none_adapter" in full:
        lines += [
            "",
            f"For scale: trained a whole epoch (the accuracy section), the learned "
            f"keep 0.5 adapter reached {100 * full['propetl_adapter']['accuracy']:.2f} % "
            f"and the ordinary adapter {100 * full['none_adapter']['accuracy']:.2f} %. "
            f"These runs train {setup['epochs']:g} of an epoch, so they compare the "
            "variants early in training, not at convergence.",
        ]
    lines += [
        "",
        "A frozen random mask is exactly the mask its learned twin starts from (same "
        "seed), so the moved column says how far training took the learned masks.",
        "",
        "Train seconds depend on what else ran on the machine; accuracies do not. "
        "A mask file holds 1 bit per prototype entry whatever the keep ratio, so the "
        "bytes per task do not change along the sweep.",
        "",
    ]
    comparisons = abl["comparisons"]
    if comparisons:
        lines += [
            "| keep | learned | frozen random | learned - random | s.e. of the difference |",
            "|---|---|---|---|---|",
        ]
        for keep, c in comparisons.items():
            lines.append(
                f"| {keep} | {100 * c['learned']:.2f} % | {100 * c['random']:.2f} % | "
                f"{100 * c['difference']:+.2f} | {100 * c['se_difference']:.2f} |"
            )
        lines.append("")
    lines += [
        "Did the paper's claims hold here?",
        "",
        f"- Learned masks find the important weights: {_random_verdict(comparisons)}",
        f"- Small PETL modules are over-parameterised: {_keep_verdict(runs, n)}",
        "",
    ]
    return [*lines, *reading("ablations")]


def _examples_seen(setup: dict) -> str:
    train, seen = setup["split_sizes"]["train"], setup["train_examples_seen"]
    if seen >= train:
        return f"{setup['epochs']:g} epoch over the {train:,} training examples"
    return f"{setup['epochs']:g} epoch (each run sees {seen:,} of the {train:,} training examples)"


def _pooled(comparisons: dict) -> str:
    """The mean learned - random gap over the keep ratios, with its standard error (the runs
    are independent), when every gap has the same sign."""
    gaps = [c["difference"] for c in comparisons.values()]
    if len(gaps) < 2 or not (all(g > 0 for g in gaps) or all(g < 0 for g in gaps)):
        return ""
    mean = sum(gaps) / len(gaps)
    se = math.sqrt(sum(c["se_difference"] ** 2 for c in comparisons.values())) / len(gaps)
    side = "learned" if mean > 0 else "random"
    beyond = "beyond" if abs(mean) > 2 * se else "within"
    return (
        f" Every gap favours {side} masks; their mean, {100 * mean:+.1f} points (s.e. "
        f"{100 * se:.1f}), is {beyond} 2 s.e."
    )


def _random_verdict(comparisons: dict) -> str:
    if not comparisons:
        return "not measured."
    clear = [k for k, c in comparisons.items() if c["difference"] > 2 * c["se_difference"]]
    worse = [k for k, c in comparisons.items() if c["difference"] < -2 * c["se_difference"]]
    gaps = "learned - random: " + ", ".join(
        f"{100 * c['difference']:+.1f} points at keep {k}" for k, c in comparisons.items()
    )
    if len(clear) == len(comparisons):
        return (
            f"held: learned masks beat frozen random ones by more than 2 s.e. at every keep "
            f"ratio ({gaps})."
        )
    if clear:
        return (
            f"held at keep {', '.join(clear)} (beyond 2 s.e.); elsewhere the gap is "
            f"within noise ({gaps}).{_pooled(comparisons)}"
        )
    if worse:
        return (
            f"did not hold: random masks did better beyond noise at keep "
            f"{', '.join(worse)} ({gaps})."
        )
    return f"not shown: the gaps are within noise ({gaps}).{_pooled(comparisons)}"


def _keep_verdict(runs: dict, n: int) -> str:
    """Does a small keep ratio stay within noise of the whole prototype (or, without a keep 1
    run, of the ordinary adapter)?"""
    full, what = runs.get("learned_1"), "keeping the whole prototype"
    if full is None:
        full, what = runs.get("none_adapter"), "the ordinary adapter"
    if full is None:
        return "not measured (neither keep 1 nor the ordinary adapter ran)."
    floor = full["accuracy"] - 2 * math.sqrt(2 * full["accuracy"] * (1 - full["accuracy"]) / n)
    sweep = sorted(
        (r["keep"], r["accuracy"])
        for name, r in runs.items()
        if name.startswith("learned_") and r["keep"] < 1
    )
    enough = [k for k, a in sweep if a >= floor]
    if not enough:
        return (
            f"did not hold: every keep ratio below 1 lost more than noise against {what} "
            f"({100 * full['accuracy']:.2f} %)."
        )
    smallest = min(enough)
    steady = (
        ""
        if [k for k, _ in sweep if k >= smallest] == enough
        else " (though not at every larger keep)"
    )
    ordinary = runs.get("none_adapter")
    against = (
        ""
        if ordinary is None or ordinary is full
        else f"; the ordinary adapter (its own module in every layer) scored "
        f"{100 * ordinary['accuracy']:.2f} %"
    )
    return (
        f"held: masks keeping only {100 * smallest:g} % of the shared prototype scored "
        f"{100 * dict(sweep)[smallest]:.2f} %, within noise of {what} "
        f"({100 * full['accuracy']:.2f} %){steady}{against}."
    )

"""The accuracy-per-byte section of docs/BENCHMARKS.md, written from pareto.json and its stats."""

from __future__ import annotations

from pathlib import Path

from .common import reading
from .pareto import SMALL_BYTES, ParetoSettings

HEADING = "## Accuracy per byte: ProPETL against PEFT's extreme-efficiency methods"


def _acc(row: dict) -> str:
    se = f" ± {100 * row['acc_se']:.2f}" if row.get("acc_se") is not None else " (1 seed)"
    return f"{100 * row['acc_mean']:.2f}{se}"


def _tried(row: dict) -> str:
    """The rates a row's grid tried with the dev accuracy of each, smallest rate first."""
    tried = sorted(row.get("dev_acc_by_lr", {}).items(), key=lambda kv: float(kv[0]))
    return ", ".join(f"{lr}: {100 * acc:.1f}" for lr, acc in tried)


def _kb(value: float) -> str:
    return f"{value / 1000:,.1f} KB"


def standing(rows: list[dict], task: str) -> list[str]:
    """Plain sentences on where each ProPETL row stands against the PEFT rows of `task`."""
    mine = [r for r in rows if r["task"] == task]
    others = [r for r in mine if not r["family"].startswith("ProPETL")]
    if not others:
        return [
            "- No PEFT or head-only row has finished on this task yet, so nothing can be "
            "said yet about where ProPETL stands against them here."
        ]
    out = []
    for r in (r for r in mine if r["family"].startswith("ProPETL")):
        smaller = [o for o in others if o["bytes_per_task"] <= r["bytes_per_task"]]
        better = [o for o in smaller if o["acc_mean"] > r["acc_mean"]]
        beyond = r.get("beaten_beyond_2se_by") or []
        text = f"- `{r['method']}` ({_kb(r['bytes_per_task'])}, {_acc(r)} %): "
        if not smaller:
            text += "no PEFT or head-only row measured so far stores as little."
        elif not better:
            text += (
                "higher mean than every PEFT or head-only row measured so far that stores "
                f"as little ({', '.join(o['method'] for o in smaller)})."
            )
        else:
            names = ", ".join(f"{o['method']} ({_acc(o)} %)" for o in better)
            text += f"PEFT rows with fewer bytes and a higher mean: {names}"
            text += (
                f"; beyond two standard errors: {', '.join(beyond)}."
                if beyond
                else "; none beyond two standard errors of the difference."
            )
        if len(r["seeds"]) < 2:
            text += " One seed only: no standard error."
        out.append(text)
    return out


def _points(diff: dict) -> str:
    return (
        f"{100 * diff['diff']:+.2f} points (standard error of the difference "
        f"{100 * diff['se_diff']:.2f})"
    )


def target_lines(t: dict) -> list[str]:
    """The issue's two targets on one task, met or not, in words."""
    out = ["Targets on this task (from the rows measured so far):", ""]
    if t["on_front"] or t["beaten"]:
        text = (
            "- *On the front* (no PEFT row with fewer bytes and a higher mean beyond two "
            "standard errors of the difference): "
        )
        text += (
            f"met by {', '.join(f'`{m}`' for m in t['on_front'])}"
            if t["on_front"]
            else "met by no added-task row"
        )
        if t["beaten"]:
            text += "; not by " + ", ".join(
                f"`{m}` (beaten by {', '.join(by)})" for m, by in t["beaten"].items()
            )
        out.append(text + ".")
    else:
        out.append("- *On the front*: no added-task row measured yet.")
    best, rival = t.get("best_small_added"), t.get("best_small_peft")
    if best and rival:
        vs = t["vs_small_peft"]
        out.append(
            f"- *At {SMALL_BYTES // 1000} KB or less*: the added-task row best on dev "
            f"`{best}` against the best PEFT row at that size `{rival}` (of "
            f"{len(t['small_peft_measured'])} measured): {_points(vs)}, "
            + ("met (higher or equal mean)." if vs["met"] else "not met.")
        )
    else:
        out.append(
            f"- *At {SMALL_BYTES // 1000} KB or less*: not assessed (an added-task row "
            "and a PEFT row at that size are both needed)."
        )
    if "vs_lora_r32" in t:
        vs = t["vs_lora_r32"]
        out.append(
            f"- *Within one point of PEFT LoRA r32*: `{best}` {_points(vs)}, "
            + ("met." if vs["met"] else "not met.")
        )
    else:
        out.append("- *Within one point of PEFT LoRA r32*: not assessed (LoRA r32 not run yet).")
    return [*out, ""]


def pareto_lines(rows: list[dict], stats: dict | None) -> list[str]:
    stats = stats or {}
    settings = stats.get("settings", {})
    lines = [
        HEADING,
        "",
        "`bench/pareto.py` (part `pareto`): every method on the same fixed split "
        f"(data seed {settings.get('data_seed', 42)}), backbone "
        f"`{settings.get('backbone', 'minilm-l6')}`, max length "
        f"{settings.get('max_length', '?')}, batch {settings.get('batch_size', '?')}, "
        f"{settings.get('steps', '?')} optimiser steps (10 % warm-up, linear decay, weight "
        "decay 0.1), the same evaluation. Each method's learning rate is the best of a "
        "small grid on the dev split with the first seed; then seeds at that rate. Bytes "
        "per task = the files a user keeps for the task (PEFT: `adapter_config.json` + "
        "`adapter_model.safetensors` with the head; ProPETL single task: the whole model "
        "folder, prototype included; ProPETL added task: only the task's folder, added "
        "onto a prototype trained on the other bundled tasks). Parameters per task exclude "
        "the head (ProPETL: the paper's fp32 equivalents, mask bits / 32). Each run is one "
        "JSON with its per-example test predictions under "
        f"`bench/results/pareto_runs/{settings.get('tag', '')}/`; the part skips runs "
        "already saved, so it resumes where it stopped.",
        "",
    ]
    default_steps = ParetoSettings.steps  # the part's protocol
    if settings.get("steps") and settings["steps"] != default_steps:
        lines += [
            f"**Shorter budget in this sitting**: {settings['steps']} steps for every "
            f"method instead of the part's {default_steps} (`--steps`), the same for all; "
            "accuracies are therefore lower than after a whole epoch and compare only "
            "with each other.",
            "",
        ]
    untried = stats.get("untried_rates", {})
    if untried:
        lines += [
            "**Grids not complete**: each row's learning rate is the best on dev of the "
            "rates it tried (the *rates tried* column, dev accuracy in %); these grid "
            "rates are not tried yet (the part runs them in a later sitting): "
            + "; ".join(
                f"{name} {', '.join(f'{lr:g}' for lr in lrs)}" for name, lrs in untried.items()
            )
            + ".",
            "",
        ]
    if stats.get("top_of_grid"):
        lines += [
            "**Chosen at the top of their grid** (dev's best is the largest rate the grid "
            "has; a larger one might do better): " + ", ".join(stats["top_of_grid"]) + ".",
            "",
        ]
    if not rows:
        return [*lines, "No method has finished its runs yet.", ""]
    for task in sorted({r["task"] for r in rows}):
        mine = sorted((r for r in rows if r["task"] == task), key=lambda r: r["bytes_per_task"])
        on_front = set(stats.get("front", {}).get(task, []))
        lines += [
            f"### {task} (test accuracy %, mean ± standard error over seeds)",
            "",
            "| method | family | bytes per task | params per task | rates tried (dev %) "
            "| lr | seeds | test acc. | on the front |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in mine:
            lines.append(
                f"| {r['method']} | {r['family']} | {r['bytes_per_task']:,} | "
                f"{r['params_per_task']:,.0f} | {_tried(r)} | {r['lr']:g} | "
                f"{len(r['seeds'])} | {_acc(r)} | "
                f"{'yes' if r['method'] in on_front else ''} |"
            )
        lines += ["", "Where ProPETL stands on this task:", "", *standing(rows, task), ""]
        if task in stats.get("targets", {}):
            lines += target_lines(stats["targets"][task])
    paired = stats.get("paired", [])
    if paired:
        lines += [
            "### Paired tests (McNemar, exact, discordant test examples summed over the "
            "seeds both rows have)",
            "",
            "| task | A | B | A - B (points) | only A right | only B right | p |",
            "|---|---|---|---|---|---|---|",
        ]
        for p in paired:
            lines.append(
                f"| {p['task']} | {p['a']} | {p['b']} | {100 * p['diff']:+.2f} | "
                f"{p['only_a_right']} | {p['only_b_right']} | {p['mcnemar_p']:.3f} |"
            )
        lines += [
            "",
            "Close pairs: a ProPETL row against a PEFT row whose means differ by "
            "less than two standard errors of the difference; and every recipe "
            "comparison (two ProPETL rows of one module that differ only in training "
            "options, such as the mask rate). p > 0.05: no difference shown.",
            "",
        ]
    lines += recipe_lines(stats.get("recipe", []))
    pending = stats.get("pending", [])
    hours = stats.get("run_seconds_total", 0) / 3600
    lines += [
        f"Runs saved: {stats.get('runs_done', '?')} ({hours:.1f} h of wall-clock time, "
        "training and evaluation; the first added-task run of a setting includes "
        "training its prototype). "
        + (
            f"Not run yet ({len(pending)} method-task pairs; the part resumes): "
            + "; ".join(pending)
            + "."
            if pending
            else "Every selected run is done."
        ),
        "",
    ]
    return [*lines, *reading("pareto"), "![pareto](../bench/results/pareto.png)", ""]


def recipe_lines(recipe: list[dict]) -> list[str]:
    """The recipe study: each variant against its row (same rate, seeds and test set)."""
    if not recipe:
        return []
    lines = [
        "### Recipe study (outside the protocol: not on the front)",
        "",
        "Each variant trains at its row's chosen rate with the row's seeds and changes one "
        "training choice: warm-up, the best of four dev evaluations kept (the engine's "
        "default), or three times the steps with the best of four kept. A change is kept "
        "only where it helps on every task.",
        "",
        "| task | row | change | row test % | variant test % | difference (points) "
        "| dev difference | only variant right | only row right | p |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in recipe:
        change = ", ".join(f"{k} {v:g}" for k, v in r["options"].items())
        lines.append(
            f"| {r['task']} | {r['b']} | {change} | {100 * r['base_acc']:.2f} | "
            f"{100 * r['acc']:.2f} | {100 * r['diff']:+.2f} ± "
            f"{100 * (r['se_diff'] or 0):.2f} | {100 * r['dev_diff']:+.2f} | "
            f"{r['only_a_right']} | {r['only_b_right']} | {r['mcnemar_p']:.3f} |"
        )
    return [*lines, ""]


def replace_section(path: Path, lines: list[str]) -> None:
    """Put the section into a Markdown file: in place of its earlier text, else before the
    closing "How to read these figures" section, else at the end."""
    text = path.read_text() if path.is_file() else ""
    old = text.split("\n")
    if HEADING in old:
        start = old.index(HEADING)
        end = next((i for i in range(start + 1, len(old)) if old[i].startswith("## ")), len(old))
    else:
        start = end = next(
            (i for i, line in enumerate(old) if line.startswith("## How to read")), len(old)
        )
    path.write_text("\n".join([*old[:start], *lines, *old[end:]]).rstrip("\n") + "\n")

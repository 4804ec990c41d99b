"""Run every benchmark, save JSON and plots, and regenerate docs/BENCHMARKS.md.

python -m bench.run_all            # full run (make bench), about 80 minutes on 2 CPU cores
python -m bench.run_all --smoke    # a tiny model and a few examples: checks the scripts
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from . import (
    ablations,
    accuracy,
    continual,
    generative,
    load,
    multitask,
    pareto,
    serve_load,
    serving,
    storage_paper,
)
from .common import RESULTS, BenchSettings, machine, write_json
from .report import plot_all, write_markdown

PARTS = (
    "storage",
    "serving",
    "accuracy",
    "multitask",
    "ablations",
    "load",
    "generative",
    "continual",
    "pareto",
    "serve_load",
)


def summary(results: dict, settings: BenchSettings) -> dict:
    """The flat figures the README and the issue's table refer to."""
    out: dict[str, object] = {
        "seeds": list(settings.seeds),
        "machine": machine(),
        "smoke": settings.smoke,
    }
    acc = results.get("accuracy", {})
    for name, row in acc.items():
        out[f"rt_acc.{name}"] = row["accuracy"]
        out[f"train_sps.{name}"] = row["train_samples_per_s"]
    if "propetl_adapter" in acc:
        out["task_bytes.propetl_adapter_marginal"] = acc["propetl_adapter"]["task_bytes"]
    if "peft_lora_r8" in acc:
        out["task_bytes.peft_lora_r8"] = acc["peft_lora_r8"]["task_bytes"]
    serve = results.get("serving", {})
    if serve:
        ratio = serve["throughput"]["ratio_vs_bare"]
        out["infer_ratio.propetl_vs_bare"] = ratio["propetl"]
        out["infer_ratio.peft_unmerged_vs_bare"] = ratio["peft_unmerged"]
        out["infer_ratio.peft_merged_vs_bare"] = ratio["peft_merged"]
        switch = serve["switching"]
        out["switch_ms.propetl_loaded"] = switch["propetl_switch_ms"]
        out["switch_ms.peft_set_adapter"] = switch["peft_set_adapter_ms"]
        out["load_ms.propetl_disk"] = switch["propetl_load_ms"]
        out["load_ms.peft_load_adapter"] = switch["peft_load_adapter_ms"]
        out["load_ms.peft_hotswap"] = switch["peft_hotswap_ms"]
        out["mixed5_ratio.propetl"] = serve["mixed"]["ratio"]["propetl"]
        speed = serve["training"]["samples_per_s"]
        out["train_sps_step.propetl_adapter"] = speed["propetl_adapter"]
        out["train_sps_step.peft_lora_r8"] = speed["peft_lora_r8"]
        out["mixed5_ratio.peft"] = serve["mixed"]["ratio"]["peft"]
    for name, row in results.get("load", {}).items():
        if isinstance(row, dict) and "requests_per_s" in row:
            out[f"load.{name}.requests_per_s"] = row["requests_per_s"]
            out[f"load.{name}.p99_ms"] = row["p99_ms"]
            out[f"load.{name}.errors_and_lost"] = row["errors"] + row["lost"]
    gen = results.get("generative")
    if gen:
        out["gen_rougeL.untuned"] = gen["untuned"]["rougeL"]
        out["gen_rougeL.propetl"] = gen["propetl_lora"]["rougeL"]
    for row in results.get("pareto", []):
        key = f"pareto.{row['task']}.{row['method']}"
        out[f"{key}.acc_mean"] = row["acc_mean"]
        out[f"{key}.acc_se"] = row["acc_se"]
        out[f"{key}.bytes_per_task"] = row["bytes_per_task"]
    cont = results.get("continual")
    if cont:
        for key in ("added_acc", "joint_acc", "single_acc"):
            out[f"continual.{key}"] = cont[key]["mean"]
        out["continual.added_bytes"] = cont["added_bytes"]
        out["continual.old_tasks_unchanged"] = cont["old_tasks_unchanged"]
    if results.get("serve_load"):
        out.update(serve_load.flat(results["serve_load"]))
    multi = results.get("multitask")
    if multi:
        out["multitask.shared_total_bytes"] = multi["shared_total_bytes"]
        out["multitask.separate_total_bytes"] = multi["separate_total_bytes"]
        for task, metrics in multi["shared"].items():
            out[f"multitask_acc.shared.{task}"] = metrics["accuracy"]
            out[f"multitask_acc.separate.{task}"] = multi["separate"][task]["accuracy"]
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--only", default=",".join(PARTS))
    parser.add_argument(
        "--runs",
        default="",
        help="accuracy part: rerun only these methods (comma-separated), "
        "keeping the others' saved figures",
    )
    parser.add_argument("--docs", type=Path, default=Path("docs/BENCHMARKS.md"))
    parser.add_argument(
        "--threads",
        type=int,
        default=2,
        help="torch threads (1: another benchmark can run side by side)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    out = args.out or (RESULTS if not args.smoke else RESULTS / "smoke")
    settings = BenchSettings.smoke_settings(out) if args.smoke else BenchSettings(out=out)
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    results: dict[str, dict] = {}
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="propetl-bench-") as work:
        for part in parts:
            started = time.monotonic()
            print(f"== {part}", flush=True)
            if part == "storage":
                results[part] = storage_paper.run()
            elif part == "serving":
                results[part] = {
                    "throughput": serving.throughput(settings),
                    "switching": serving.switching(settings),
                    "mixed": serving.mixed_batch(settings),
                    "training": serving.training_speed(settings),
                }
            elif part == "accuracy":
                names = [n.strip() for n in args.runs.split(",") if n.strip()] or None
                saved = out / "accuracy.json"
                kept = json.loads(saved.read_text()) if names and saved.is_file() else {}
                fresh = accuracy.run(settings, Path(work) / "accuracy", names)
                results[part] = {**kept, **fresh}
            elif part == "multitask":
                results[part] = multitask.run(settings, Path(work) / "multitask")
            elif part == "ablations":
                results[part] = ablations.run(
                    settings, Path(work) / "ablations", out / "accuracy.json"
                )
            elif part == "load":
                results[part] = load.run(settings.smoke)
            elif part == "serve_load":
                results[part] = serve_load.run(settings.smoke)
            elif part == "continual":
                results[part] = continual.run(
                    continual.ContinualSettings.smoke_settings()
                    if args.smoke
                    else continual.ContinualSettings(),
                    Path(work) / "continual",
                    None if args.smoke else out / "continual_runs",
                )
            elif part == "pareto":  # resumable: runs saved under out/pareto_runs are reused
                results[part] = pareto.run(
                    pareto.ParetoSettings.smoke_settings(out)
                    if args.smoke
                    else pareto.ParetoSettings(out=out)
                )["rows"]  # pareto.json: the rows
            elif part == "generative":
                gen = (
                    generative.smoke_settings(out)
                    if args.smoke
                    else generative.GenSettings(out=out)
                )
                results[part] = generative.run(gen, Path(work) / "generative")
            else:
                raise SystemExit(f"unknown part {part!r}; parts: {', '.join(PARTS)}")
            timings[part] = time.monotonic() - started
            write_json(out / f"{part}.json", results[part])
    for part in PARTS:  # keep the figures of parts not rerun this time
        saved = out / f"{part}.json"
        if part not in results and saved.is_file():
            results[part] = json.loads(saved.read_text())
    flat = summary(results, settings)
    saved_summary = out / "summary.json"
    earlier = (
        json.loads(saved_summary.read_text()).get("seconds", {}) if saved_summary.is_file() else {}
    )
    flat["seconds"] = {**earlier, **timings}  # parts not rerun keep their timings
    write_json(out / "summary.json", flat)
    plots = plot_all(results, out)
    if not args.smoke:
        write_markdown(results, flat, plots, args.docs)
    print(f"results in {out}; {sum(timings.values()):.0f} s in all", flush=True)


if __name__ == "__main__":
    main()

"""The Markdown section of the `continual` benchmark (a task added onto a trained prototype)."""

from __future__ import annotations


def _pm(stat: dict, scale: float = 100.0, digits: int = 2) -> str:
    return f"{scale * stat['mean']:.{digits}f} +/- {scale * stat['se']:.{digits}f}"


def continual_lines(cont: dict) -> list[str]:
    s = cont["settings"]
    n = len(s["seeds"])
    gap = cont["gap_joint_minus_added"]
    lines = [
        "## Living prototypes: a task added onto a trained prototype", "",
        f"Per seed ({', '.join(map(str, s['seeds']))}): a ProPETL adapter prototype (bottleneck "
        f"64, keep 0.5) trained on bbc_news + tweet_sentiment for {s['proto_steps']} steps; then "
        f"rotten_tomatoes added onto it for {s['added_steps']} steps (only its mask scores and "
        "head train; the prototype and the old tasks are frozen). Compared with a joint 3-task "
        f"run ({s['joint_steps']} steps, uniform task sampling: about "
        f"{s['joint_steps'] // 3} per task) and a single-task run ({s['single_steps']} steps) "
        f"of the same method. Batch {s['batch_size']}, max length {s['max_length']}, lr "
        f"{s['lr']:g}; every split of every task capped at {s['max_examples']} examples (the "
        "same seeded subsample for all three settings; tweet_sentiment's 30k training texts "
        "subsampled). These runs are short on purpose: the 2-core CPU was shared with four "
        "other engineers' runs (a few training samples/s), so the part was sized to finish "
        f"in the time there was ({cont.get('seconds', 0) / 60:.0f} minutes of runs). Mean +/- "
        f"standard error over {n} seed(s); rotten_tomatoes test accuracy in % (test split "
        f"capped at {s['max_examples']} examples: one example is "
        f"{100 / s['max_examples']:.2f} points).", "",
        "| rotten_tomatoes | test accuracy (%) |", "|---|---|",
        f"| added onto the frozen prototype | {_pm(cont['added_acc'])} |",
        f"| joint 3-task training | {_pm(cont['joint_acc'])} |",
        f"| single-task run | {_pm(cont['single_acc'])} |",
        f"| joint minus added (paired by seed) | {_pm(gap)} points |", "",
        f"Bytes the added task wrote: {cont['added_bytes']:,} (its folder: bit-packed masks "
        f"{cont['added_mask_bytes']:,} bytes, fp32 head and task.json); nothing else was "
        f"written. Old files unchanged (sha256 of the prototype file and of every old task's "
        f"files, and of the whole base folder): **{cont['old_tasks_unchanged']}**.", "",
        f"Target (added within 1.5 points of joint training, under 45 KB added): "
        f"**{'met' if cont['target_met'] else 'not met'}** (gap {100 * gap['mean']:.2f} points, "
        f"{cont['added_bytes']:,} bytes).", "",
        "### Do related tasks end closer in mask distance?", "",
        "Every task on a prototype starts from the same seeded scores (`mask_init: shared`), so "
        "a Hamming distance between two tasks' masks (mean over all layers and masked tensors) "
        "is made by training alone. rotten_tomatoes and tweet_sentiment are both sentiment "
        "tasks; bbc_news is topic classification.", "",
        "| model | rotten vs tweet (related) | rotten vs bbc | tweet vs bbc | rotten from start "
        "| tweet from start | bbc from start | related closer in every seed |",
        "|---|---|---|---|---|---|---|---|"]
    for kind, label in (("added", "rotten_tomatoes added later"), ("joint", "joint 3-task")):
        d = cont[f"distance_{kind}"]
        start = d["from_start"]
        lines.append(
            f"| {label} | {_pm(d['rotten_vs_tweet'], digits=3)} | "
            f"{_pm(d['rotten_vs_bbc'], digits=3)} | {_pm(d['tweet_vs_bbc'], digits=3)} | "
            f"{_pm(start['rotten_tomatoes'], digits=3)} | "
            f"{_pm(start['tweet_sentiment'], digits=3)} | {_pm(start['bbc_news'], digits=3)} | "
            f"{'yes' if d['related_closer_in_every_seed'] else 'no'} |")
    lines += ["", "Distances in % of mask entries; two independent random masks of keep 0.5 "
              "differ in 50 %.", ""]
    return lines

"""The Markdown section of the `continual` benchmark (a task added onto a trained prototype)."""

from __future__ import annotations

from propetl.config import PAPER_MASK_LR

from .common import reading


def _pm(stat: dict, scale: float = 100.0, digits: int = 2) -> str:
    if stat.get("mean") is None:
        return "n/a"
    return f"{scale * stat['mean']:.{digits}f} +/- {scale * stat['se']:.{digits}f}"


def continual_lines(cont: dict) -> list[str]:
    s = cont["settings"]
    n = len(s["seeds"])
    gap = cont["gap_joint_minus_added"]
    lines = [
        "## Living prototypes: a task added onto a trained prototype",
        "",
        f"Per seed ({', '.join(map(str, s['seeds']))}): a ProPETL adapter prototype (bottleneck "
        f"64, keep 0.5) trained on bbc_news + tweet_sentiment for {s['proto_steps']} steps; then "
        f"rotten_tomatoes added onto it for {s['added_steps']} steps (only its mask scores and "
        "head train; the prototype and the old tasks are frozen). Compared with a joint 3-task "
        f"run ({s['joint_steps']} steps, uniform task sampling: about "
        f"{s['joint_steps'] // 3} per task) and a single-task run ({s['single_steps']} steps) "
        f"of the same method. Batch {s['batch_size']}, max length {s['max_length']}, lr "
        f"{s['lr']:g}, mask lr {s.get('mask_lr', PAPER_MASK_LR['adapter']):g}; every split of every task capped at {s['max_examples']} examples (the "
        "same seeded subsample for all three settings; tweet_sentiment's 30k training texts "
        "subsampled). These runs are short: the 2-core CPU was busy with "
        "test suites at the same time (a few training samples/s), so the part was sized to "
        "finish in the time there was (each seed's four runs took "
        f"{min(r['seconds'] for r in cont['runs']) / 60:.0f}-"
        f"{max(r['seconds'] for r in cont['runs']) / 60:.0f} minutes here; the seeds can run "
        "in parallel processes, each saved as it ends). Mean +/- "
        f"standard error over {n} seed(s); rotten_tomatoes test accuracy in % (test split "
        f"capped at {s['max_examples']} examples: one example is "
        f"{100 / s['max_examples']:.2f} points).",
        "",
        "| rotten_tomatoes | test accuracy (%) |",
        "|---|---|",
        f"| added onto the frozen prototype | {_pm(cont['added_acc'])} |",
        f"| joint 3-task training | {_pm(cont['joint_acc'])} |",
        f"| single-task run | {_pm(cont['single_acc'])} |",
        f"| joint minus added (paired by seed) | {_pm(gap)} points |",
        "",
        f"Bytes the added task wrote: {cont['added_bytes']:,} (its folder: bit-packed masks "
        f"{cont['added_mask_bytes']:,} bytes, fp32 head and task.json). Old files unchanged "
        "(sha256 of the prototype file and of every old task's files in the grown model folder, "
        f"and of every file of the base folder after the run): "
        f"**{cont['old_tasks_unchanged']}**.",
        "",
        f"Target (added within 1.5 points of joint training, under 45 KB added): "
        f"**{'met' if cont['target_met'] else 'not met'}** (gap {100 * gap['mean']:.2f} points, "
        f"{cont['added_bytes']:,} bytes).",
        "",
        *_verdict(cont),
        "",
        "### Do related tasks end closer in mask distance?",
        "",
        "Every task on a prototype starts from the same seeded scores (`mask_init: shared`), so "
        "a Hamming distance between two tasks' masks (mean over all layers and masked tensors) "
        "is made by training alone. rotten_tomatoes and tweet_sentiment are both sentiment "
        "tasks; bbc_news is topic classification.",
        "",
        "| model | rotten vs tweet (related) | rotten vs bbc | tweet vs bbc | rotten from start "
        "| tweet from start | bbc from start | related closer in every seed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for kind, label in (("added", "rotten_tomatoes added later"), ("joint", "joint 3-task")):
        d = cont[f"distance_{kind}"]
        start = d["from_start"]
        lines.append(
            f"| {label} | {_pm(d['rotten_vs_tweet'], digits=3)} | "
            f"{_pm(d['rotten_vs_bbc'], digits=3)} | {_pm(d['tweet_vs_bbc'], digits=3)} | "
            f"{_pm(start['rotten_tomatoes'], digits=3)} | "
            f"{_pm(start['tweet_sentiment'], digits=3)} | {_pm(start['bbc_news'], digits=3)} | "
            f"{'yes' if d['related_closer_in_every_seed'] else 'no'} |"
        )
    lines += [
        "",
        "Distances in % of mask entries; two independent random masks of keep 0.5 "
        "differ in 50 %. Observed distance over the distance two tasks would have if "
        "each had moved from the common start independently (p + q - 2pq, p and q their "
        "distances from the start; below 1: they moved alike):",
        "",
        "| model | rotten vs tweet (related) | rotten vs bbc (unrelated) |",
        "|---|---|---|",
    ]
    for kind, label in (("added", "rotten_tomatoes added later"), ("joint", "joint 3-task")):
        d = cont[f"distance_{kind}"]
        if "rotten_vs_tweet_vs_independent" in d:
            lines.append(
                f"| {label} | {_pm(d['rotten_vs_tweet_vs_independent'], 1, 3)} | "
                f"{_pm(d['rotten_vs_bbc_vs_independent'], 1, 3)} |"
            )
    lines += ["", *_distance_verdict(cont), ""]
    return [*lines, *reading("continual")]


def _verdict(cont: dict) -> list[str]:
    """A plain reading of the accuracy figures against the majority class."""
    majority = cont.get("majority_acc")
    if majority is None:
        return []
    best = max(cont[k]["mean"] for k in ("added_acc", "joint_acc", "single_acc"))
    text = f"Majority class of this test split: {100 * majority:.2f} %. "
    if best - majority < 0.03:
        text += (
            "**Read with care**: at this budget every setting is within 3 points of the "
            "majority class (the single-task runs predict it outright), so the target is "
            "met only in the letter: these runs are too short to test whether masks over "
            "a frozen prototype match joint training. What they do show: adding a task "
            "writes about 40 KB and leaves every old file byte-identical."
        )
    else:
        text += "Every setting learned the task beyond the majority class."
    return [text]


def _distance_verdict(cont: dict) -> list[str]:
    d = {k: cont[f"distance_{k}"] for k in ("added", "joint")}
    raw = all(x["related_closer_in_every_seed"] for x in d.values())
    if "rotten_vs_tweet_vs_independent" not in d["added"]:
        return []
    rel = [x["rotten_vs_tweet_vs_independent"]["mean"] for x in d.values()]
    unrel = [x["rotten_vs_bbc_vs_independent"]["mean"] for x in d.values()]
    if None in rel or None in unrel:
        return ["No task moved from the start: nothing to compare."]
    gaps = [u - r for r, u in zip(rel, unrel, strict=True)]
    text = (
        "Reading: in raw distance the related pair is "
        + ("closer in every seed, in both models" if raw else "not closer in every seed")
        + (
            ", but bbc_news also moved further from the start than tweet_sentiment"
            if all(
                x["from_start"]["bbc_news"]["mean"] > x["from_start"]["tweet_sentiment"]["mean"]
                for x in d.values()
            )
            else ""
        )
        + f"; relative to independent moves the related pair is closer by "
        f"{', '.join(f'{g:.3f}' for g in gaps)} (added, joint). "
    )
    if max(gaps) < 0.03:
        text += (
            "So, honestly: on these short runs related tasks do **not** end clearly "
            "closer than unrelated ones; all three moved alike (ratios about 0.8), which "
            "looks like a shared direction of training from the common start rather than "
            "task relatedness."
        )
    else:
        text += "The related pair moved more alike than the unrelated one."
    return [text]

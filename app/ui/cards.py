"""Launch tab: the dataset card of a task, and the warning when many texts are cut."""

from __future__ import annotations

from typing import Any

from propetl.data.card import TRUNCATION_WARNING

from ..datacards import task_card
from .guard import current_access


def _card(task: str, backbone: str | None, max_length: Any) -> dict[str, Any]:
    try:
        length = int(float(max_length)) if max_length not in (None, "") else 128
    except (TypeError, ValueError):
        length = 128
    return task_card(current_access(), task, backbone or "minilm-l6", length)


def card_md(task: str | None, backbone: str | None, max_length: Any) -> str:
    """The card as Markdown (sizes, balance, majority baseline, tokens, duplicates, hash)."""
    if not task:
        return "*Choose a task to see its card.*"
    try:
        card = _card(task, backbone, max_length)
    except Exception as err:  # hub task offline, unreadable file, another's upload
        return f"cannot describe {task}: {err}"
    sizes = card["sizes"]
    lines = [
        f"**{card['task']}** · train / dev / test **{sizes['train']:,} / {sizes['dev']:,} / "
        f"{sizes['test']:,}** · content sha256 `{card['content_sha256'][:16]}…`"
    ]
    if card.get("class_balance"):
        train = card["class_balance"]["train"]
        total = max(1, sum(train.values()))
        lines.append(
            "Class balance (train): "
            + ", ".join(f"{k} {v:,} ({v / total:.0%})" for k, v in train.items())
        )
        major = card["majority_baseline"]
        lines.append(
            f"Majority-class baseline: always **{major['label']}** scores "
            f"**{major['test_accuracy']:.1%}** test accuracy"
        )
    tokens = card.get("tokens")
    if tokens:
        p = tokens["percentiles"]
        cut = tokens["truncated_share"]
        lines.append(
            f"Tokens per training text ({tokens['backbone']}): median {p[50]}, 90th "
            f"percentile {p[90]}, 99th {p[99]}, longest {tokens['max']}"
            + (
                f"; **{cut:.1%} cut at max length {tokens['max_length']}**"
                if cut is not None
                else ""
            )
        )
        lines.append(
            "Length histogram: "
            + ", ".join(
                f"{b['from']}–{b['to'] or '…'}: {b['count']:,}"
                for b in tokens["histogram"]
                if b["count"]
            )
        )
    dup = card["duplicates"]
    removed = dup.get("removed_by_loader")
    lines.append(
        f"Duplicates: {dup['within_splits']} repeated texts within splits, "
        f"{dup['across_splits']} shared between splits"
        + (
            f"; the loader removed {removed['duplicate_rows']:,} repeated rows and "
            f"{removed['conflicting_texts']:,} texts with conflicting labels"
            if removed
            else ""
        )
    )
    return "\n\n".join(lines)


def truncation_warning(tasks: list[str] | None, backbone: str | None, max_length: Any) -> str:
    """A warning naming each chosen task with a large share of texts cut at max length."""
    cut = []
    for task in tasks or []:
        try:
            share = (_card(task, backbone, max_length).get("tokens") or {}).get("truncated_share")
        except Exception:  # the tasks table says what is wrong with the task
            continue
        if share is not None and share >= TRUNCATION_WARNING:
            cut.append(f"{task} ({share:.0%})")
    if not cut:
        return ""
    return (
        f"⚠ Max length {max_length} cuts many training texts of {', '.join(cut)}; a "
        "larger max length keeps more of each text (and costs time)."
    )

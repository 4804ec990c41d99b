"""Matplotlib figures for the dashboard: curves, heatmaps, bars and mask bitmaps.

Figures are built with `matplotlib.figure.Figure` (not pyplot), so nothing global keeps them
alive after Gradio has rendered them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

Curve = Sequence[tuple[float, float]]
PALETTE = ["#2563eb", "#f97316", "#16a34a", "#db2777", "#7c3aed", "#0891b2", "#ca8a04", "#dc2626"]
OVERLAY_COLOURS = ["#f3f4f6", "#2563eb", "#f97316", "#111827"]  # neither, only A, only B, both


def _figure(width: float = 6.4, height: float = 3.4) -> Figure:
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    fig.patch.set_facecolor("white")
    return fig


def _style(ax, title: str, xlabel: str = "", ylabel: str = "") -> None:
    ax.set_title(title, fontsize=11, loc="left", fontweight="bold")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(alpha=0.25)


def message(text: str, title: str = "") -> Figure:
    """An empty chart that says why it is empty."""
    fig = _figure(height=2.2)
    ax = fig.add_subplot()
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=11, loc="left", fontweight="bold")
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=11, color="#6b7280", wrap=True)
    return fig


def curves(
    series: Mapping[str, Curve],
    title: str,
    ylabel: str = "",
    xlabel: str = "step",
    reference: tuple[str, float] | None = None,
    empty: str = "no points yet",
    ylim: tuple[float, float] | None = None,
    references: Sequence[tuple[str, float]] = (),
) -> Figure:
    """Lines of (x, y) points, one per label, with optional horizontal references (dashed,
    in the colour of the line they belong to when their label starts with its label)."""
    series = {k: v for k, v in series.items() if v}
    if not series:
        return message(empty, title)
    fig = _figure()
    ax = fig.add_subplot()
    for i, (label, points) in enumerate(series.items()):
        xs, ys = zip(*points, strict=True)
        ax.plot(
            xs,
            ys,
            label=label,
            color=PALETTE[i % len(PALETTE)],
            linewidth=1.8,
            marker="o" if len(xs) < 15 else None,
            markersize=4,
        )
    if reference is not None:
        ax.axhline(reference[1], color="#6b7280", linestyle="--", linewidth=1.2, label=reference[0])
    labels = list(series)
    for name, value in references:
        owner = next((i for i, k in enumerate(labels) if name.startswith(k.split(" (")[0])), None)
        ax.axhline(
            value,
            color="#6b7280" if owner is None else PALETTE[owner % len(PALETTE)],
            linestyle=":",
            linewidth=1.2,
            label=name,
        )
    _style(ax, title, xlabel, ylabel)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if ylim is not None:
        ax.set_ylim(*ylim)
    if len(series) > 1 or reference is not None or references:
        ax.legend(fontsize=8, frameon=False)
    return fig


def heatmap(
    matrix: np.ndarray,
    labels: Sequence[str],
    title: str,
    *,
    cmap: str = "viridis",
    vmin: float | None = 0.0,
    vmax: float | None = 1.0,
    col_labels: Sequence[str] | None = None,
    colorbar: str = "",
) -> Figure:
    """A square (or labelled) matrix with its values written in the cells when few."""
    cols = list(col_labels or labels)
    size = max(3.6, min(7.0, 1.6 + 0.55 * max(len(labels), len(cols))))
    fig = _figure(size + 1.0, size)
    ax = fig.add_subplot()
    image = ax.imshow(matrix, cmap=cmap, vmin=vmin, vmax=vmax)
    ax.set_xticks(range(len(cols)), cols, rotation=35, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), list(labels), fontsize=8)
    ax.set_title(title, fontsize=11, loc="left", fontweight="bold")
    if matrix.size <= 64:
        lo = np.nanmin(matrix) if vmin is None else vmin
        hi = np.nanmax(matrix) if vmax is None else vmax
        for (r, c), value in np.ndenumerate(matrix):
            bright = (value - lo) / ((hi - lo) or 1) > 0.6
            ax.text(
                c,
                r,
                f"{value:.2f}",
                ha="center",
                va="center",
                fontsize=8,
                color="black" if bright else "white",
            )
    fig.colorbar(image, ax=ax, shrink=0.8, label=colorbar)
    return fig


def layer_lines(
    values: Mapping[str, np.ndarray],
    title: str,
    ylabel: str,
    reference: tuple[str, float] | None = None,
    ylim: tuple[float, float] | None = None,
) -> Figure:
    """One line per label over layer index 0..L-1."""
    return curves(
        {k: list(enumerate(np.asarray(v, dtype=float).tolist())) for k, v in values.items()},
        title,
        ylabel,
        xlabel="layer",
        reference=reference,
        ylim=ylim,
    )


def overlay_bitmap(codes: np.ndarray, task_a: str, task_b: str, title: str) -> Figure:
    """A two-task mask overlay: both / only A / only B / neither, with the share of each."""
    fig = _figure(7.0, 3.8)
    ax = fig.add_subplot()
    ax.imshow(
        codes,
        cmap=ListedColormap(OVERLAY_COLOURS),
        vmin=0,
        vmax=3,
        interpolation="nearest",
        aspect="auto",
    )
    ax.set_title(title, fontsize=11, loc="left", fontweight="bold")
    ax.set_xlabel("input")
    ax.set_ylabel("output")
    total = max(codes.size, 1)
    names = ["neither", f"only {task_a}", f"only {task_b}", "both"]
    handles = [
        Patch(
            facecolor=OVERLAY_COLOURS[i],
            edgecolor="#9ca3af",
            label=f"{names[i]} ({100 * (codes == i).sum() / total:.0f}%)",
        )
        for i in (3, 1, 2, 0)
    ]
    ax.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.14),
        ncol=4,
        fontsize=8,
        frameon=False,
    )
    return fig


def keep_rate_bars(rows: np.ndarray, cols: np.ndarray, keep: float, title: str) -> Figure:
    """Per-neuron keep rates of one mask (output rows, input columns) against k."""
    fig = _figure(7.0, 3.4)
    for i, (values, label) in enumerate(((rows, "output neurons"), (cols, "input neurons"))):
        ax = fig.add_subplot(1, 2, i + 1)
        ax.bar(range(len(values)), values, color=PALETTE[i], width=1.0)
        ax.axhline(keep, color="#6b7280", linestyle="--", linewidth=1.2, label=f"k = {keep:g}")
        ax.set_ylim(0, 1)
        _style(ax, title if i == 0 else "", label, "keep rate" if i == 0 else "")
        ax.legend(fontsize=8, frameon=False)
    return fig


# --- sweeps ----------------------------------------------------------------------------


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats (fewer or equal bytes and a higher score, or
    fewer bytes and an equal score), by increasing bytes."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front: list[int] = []
    best = -np.inf
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def _panels(count: int, height: float = 3.4) -> tuple[Figure, list]:
    cols = min(count, 2)
    rows = -(-count // cols)
    fig = _figure(6.4 if cols == 1 else 11.0, height * rows)
    return fig, [fig.add_subplot(rows, cols, i + 1) for i in range(count)]


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def sweep_lines(
    per_task: Mapping[str, Mapping[str, Curve]],
    xlabel: str,
    ylabel: str,
    title: str = "Metric against the swept value",
) -> Figure:
    """One panel per task, one line per group: `per_task[task][group] = [(x, y), ...]`.

    Numeric x values share a numeric axis (logarithmic when they span a factor of 10 or
    more); other values are placed in the order they first appear.
    """
    per_task = {t: {g: p for g, p in groups.items() if p} for t, groups in per_task.items()}
    per_task = {t: g for t, g in per_task.items() if g}
    if not per_task:
        return message("no finished jobs in this sweep yet", title)
    xs = [x for groups in per_task.values() for pts in groups.values() for x, _ in pts]
    numeric = all(_is_number(x) for x in xs)
    categories = list(dict.fromkeys(str(x) for x in xs))
    fig, axes = _panels(len(per_task))
    for ax, (task, groups) in zip(axes, per_task.items(), strict=True):
        for i, (group, points) in enumerate(groups.items()):
            ordered = sorted(points, key=lambda p: p[0]) if numeric else points
            px = [x if numeric else categories.index(str(x)) for x, _ in ordered]
            ax.plot(
                px,
                [y for _, y in ordered],
                marker="o",
                markersize=5,
                linewidth=1.8,
                color=PALETTE[i % len(PALETTE)],
                label=group or None,
            )
        _style(ax, f"{title}: {task}", xlabel, ylabel)
        if numeric and min(xs) > 0 and max(xs) / min(xs) >= 10:
            ax.set_xscale("log")
            ax.set_xticks(sorted(set(xs)), [f"{x:g}" for x in sorted(set(xs))])
        elif not numeric:
            ax.set_xticks(range(len(categories)), categories)
        if any(groups):
            ax.legend(fontsize=8, frameon=False)
    return fig


def pareto(
    per_task: Mapping[str, Sequence[tuple[float, float, str]]],
    references: Mapping[str, Sequence[tuple[float, float, str]]] | None = None,
    title: str = "Score against stored bytes per task",
) -> Figure:
    """One panel per task: each job's (bytes, score, label), the Pareto front drawn as a line,
    and reference points (measured elsewhere) as grey markers with their labels."""
    per_task = {t: list(p) for t, p in per_task.items() if p}
    if not per_task:
        return message("no finished jobs in this sweep yet", title)
    references = references or {}
    fig, axes = _panels(len(per_task), height=3.8)
    for ax, (task, points) in zip(axes, per_task.items(), strict=True):
        groups = list(dict.fromkeys(g for _, _, g in points))
        for i, group in enumerate(groups):
            mine = [(b, s) for b, s, g in points if g == group]
            ax.scatter(
                *zip(*mine, strict=True),
                s=36,
                color=PALETTE[i % len(PALETTE)],
                label=group or "jobs",
                zorder=3,
            )
        front = [points[i] for i in pareto_front([(b, s) for b, s, _ in points])]
        ax.plot(
            [b for b, _, _ in front],
            [s for _, s, _ in front],
            drawstyle="steps-post",
            color="#111827",
            linewidth=1.4,
            zorder=2,
            label="Pareto front",
        )
        ax.scatter(
            [b for b, _, _ in front],
            [s for _, s, _ in front],
            s=110,
            facecolors="none",
            edgecolors="#111827",
            linewidths=1.4,
            zorder=4,
        )
        for j, (b, s, name) in enumerate(references.get(task, [])):
            ax.scatter([b], [s], marker="Dxsv^"[j % 5], s=48, color="#6b7280", zorder=3, label=name)
        ax.set_xscale("log")
        _style(ax, f"{title}: {task}", "stored bytes per task (log)", "score")
        ax.legend(fontsize=7, frameon=False, loc="lower right")
    return fig

"""Sweeps tab: a sweep's jobs and results, the metric against the swept value per task, and
the score against stored bytes per task (Pareto front, with measured reference points)."""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

import gradio as gr
import pandas as pd

from .. import plots, views
from ..registry import NotFoundError
from .common import STATUS_ICON, empty_state, fmt_bytes, registry

NO_SWEEPS = empty_state(
    "No sweeps yet — launch one from the <b>Sweep</b> section of the "
    "<b>Launch</b> tab, with <code>propetl jobs sweep</code> or "
    "<code>POST /api/sweeps</code>."
)
COLUMNS = ["Job", "Values", "Status", "Task", "Dev", "Test", "Stored bytes (masks)"]
REFRESH_S = 3.0


@dataclass
class SweepsUI:
    picker: gr.Dropdown
    empty: gr.HTML


def sweep_choices() -> list[tuple[str, int]]:
    out = []
    for sweep in registry().list_sweeps():
        fields = " × ".join(p.removeprefix("propetl.") for p in sweep.grid)
        out.append(
            (f"#{sweep.id} · {sweep.name or 'sweep'} · {fields} · {len(sweep.jobs)} jobs", sweep.id)
        )
    return out


def _score(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def results_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            [
                f"#{r['job_id']}",
                r["label"],
                f"{STATUS_ICON.get(r['status'], '')} {r['status']}",
                r["task"],
                _score(r["dev"]),
                _score(r["test"]),
                fmt_bytes(r["stored_bytes"]) if r["stored_bytes"] else "",
            ]
            for r in rows
        ],
        columns=COLUMNS,
    )


def summary_md(detail: dict[str, Any]) -> str:
    grid = " × ".join(
        f"**{p.removeprefix('propetl.')}** ∈ {{{', '.join(map(str, v))}}}"
        for p, v in detail["grid"].items()
    )
    statuses = ", ".join(f"{n} {s}" for s, n in sorted(detail["statuses"].items()))
    config = detail["base_spec"].get("config", {})
    return (
        f"### #{detail['id']} · {html.escape(detail['name'] or 'sweep')}\n"
        f"{grid} over **{html.escape(str(config.get('backbone', '')))}** on "
        f"{html.escape(', '.join(config.get('tasks', [])))} · {detail['jobs']} jobs "
        f"({statuses}) · owner {html.escape(detail['owner'])}\n\n"
        "Scores are each task's main test metric (dev when there is no test split); stored "
        "bytes are the task's masks file. Grey markers: PEFT's methods measured on the "
        "bundled minilm-l6 backbone by `bench/pareto.py` (mean over seeds; bytes = every "
        "file a task keeps, head included) and, for what it has not measured, "
        "`bench/accuracy.py` (one seed)."
    )


def figures(detail: dict[str, Any]) -> tuple[Any, Any]:
    """The line plot against the first swept field and the Pareto plot."""
    lines, points = views.sweep_plot_data(detail["results"], detail["grid"])
    first = next(iter(detail["grid"])).removeprefix("propetl.")
    references = {t: p for t, p in views.reference_points().items() if t in points}
    return (plots.sweep_lines(lines, first, "score"), plots.pareto(points, references))


def sweep_page(sweep_id: int | None, shown: str) -> tuple[Any, ...]:
    """Summary, results table and both plots; the plots are redrawn only when results change."""
    if not sweep_id:
        return (
            gr.update(visible=False),
            "",
            pd.DataFrame(columns=COLUMNS),
            gr.skip(),
            gr.skip(),
            "",
        )
    try:
        detail = views.sweep_detail(registry().get_sweep(int(sweep_id)))
    except NotFoundError:
        return (
            gr.update(visible=False),
            "",
            pd.DataFrame(columns=COLUMNS),
            gr.skip(),
            gr.skip(),
            "",
        )
    key = repr([(r["job_id"], r["task"], r["status"], r["test"]) for r in detail["results"]])
    plotted: tuple[Any, Any] = (gr.skip(), gr.skip()) if key == shown else figures(detail)
    return (
        gr.update(visible=True),
        summary_md(detail),
        results_frame(detail["results"]),
        *plotted,
        key,
    )


def reload(current: int | None) -> tuple[Any, Any]:
    """Fresh sweep choices (keeping the open sweep) and the empty state's visibility."""
    fresh = sweep_choices()
    ids = [i for _, i in fresh]
    value = current if current in ids else (ids[0] if ids else None)
    return gr.update(choices=fresh, value=value), gr.update(visible=not fresh)


def build() -> SweepsUI:
    choices = sweep_choices()
    empty = gr.HTML(NO_SWEEPS, visible=not choices, elem_id="sweeps-empty")
    with gr.Row():
        picker = gr.Dropdown(
            choices,
            value=choices[0][1] if choices else None,
            label="Sweep",
            scale=4,
            elem_id="sweeps-open",
        )
        refresh = gr.Button("↻ Refresh", size="sm", scale=1)
    shown = gr.State("")
    with gr.Column(visible=False, elem_classes="pp-card") as page:
        summary = gr.Markdown(elem_id="sweep-summary")
        with gr.Row():
            metric_plot = gr.Plot(show_label=False, elem_id="sweep-metric")
            pareto_plot = gr.Plot(show_label=False, elem_id="sweep-pareto")
        table = gr.Dataframe(
            headers=COLUMNS,
            interactive=False,
            label="Jobs and results",
            max_height=320,
            elem_id="sweep-table",
        )
    timer = gr.Timer(REFRESH_S)
    outputs = [page, summary, table, metric_plot, pareto_plot, shown]
    picker.change(lambda s: sweep_page(s, ""), picker, outputs, api_visibility="private")
    timer.tick(
        sweep_page, [picker, shown], outputs, api_visibility="private", show_progress="hidden"
    )

    refresh.click(reload, picker, [picker, empty], api_visibility="private")
    return SweepsUI(picker, empty)

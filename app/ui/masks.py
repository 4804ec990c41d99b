"""Masks tab: how the tasks' masks over one prototype differ, layer by layer."""

from __future__ import annotations

from typing import Any

import gradio as gr

from .. import maskstats as S
from .. import plots
from .common import Refresh, empty_state, engine, picked_prototype

NO_PROTOTYPES = empty_state("No prototypes yet — they appear here when a job succeeds.")
N_PLOTS = 7


def _stacks(uid: str) -> dict[str, S.MaskStack]:
    return S.mask_stacks(engine().model(uid))


def controls(uid: str | None) -> tuple[Any, ...]:
    """Tensor, layer and task pickers for a prototype."""
    if not uid:
        return (
            gr.update(choices=[], value=None),
            gr.update(maximum=1, value=0),
            gr.update(choices=[], value=None),
            gr.update(choices=[], value=None),
        )
    stacks = _stacks(uid)
    if not stacks:
        return (
            gr.update(choices=[], value=None),
            gr.update(maximum=1, value=0),
            gr.update(choices=[], value=None),
            gr.update(choices=[], value=None),
        )
    first = next(iter(stacks.values()))
    tasks = first.tasks
    return (
        gr.update(choices=list(stacks), value=first.key),
        gr.update(maximum=max(1, first.num_layers - 1), value=0),
        gr.update(choices=tasks, value=tasks[0]),
        gr.update(choices=tasks, value=tasks[1] if len(tasks) > 1 else tasks[0]),
    )


def render(
    uid: str | None,
    key: str | None,
    layer: float,
    averaged: bool,
    task_a: str | None,
    task_b: str | None,
) -> tuple[Any, ...]:
    """The note and every chart of the tab."""
    hidden = gr.update(visible=False)
    if not uid:
        return (NO_PROTOTYPES, hidden, *[None] * N_PLOTS)
    stacks = _stacks(uid)
    if not stacks:
        note = empty_state(
            "This prototype has no masks (sharing 'none' trains ordinary modules per task)."
        )
        return (note, hidden, *[None] * N_PLOTS)
    stack = stacks.get(key or "") or next(iter(stacks.values()))
    layer = int(min(max(layer or 0, 0), stack.num_layers - 1))
    task_a = task_a if task_a in stack.tasks else stack.tasks[0]
    task_b = task_b if task_b in stack.tasks else stack.tasks[-1]
    where = "mean over layers" if averaged else f"layer {layer}"
    baseline = S.random_baseline(stack)
    figures = [
        plots.heatmap(
            S.task_matrix(stack, "hamming", None if averaged else layer),
            stack.tasks,
            f"Hamming distance, {where}",
            cmap="magma",
            colorbar="normalised distance",
        ),
        plots.heatmap(
            S.task_matrix(stack, "jaccard", None if averaged else layer),
            stack.tasks,
            f"Jaccard overlap, {where}",
            cmap="viridis",
            colorbar="overlap",
        ),
        plots.layer_lines(
            {"task pairs (mean)": S.hamming_per_layer(stack)},
            "Hamming distance between tasks, per layer",
            "distance",
            ylim=(0, 1),
            reference=(f"random masks 2k(1-k) = {baseline:.3f}", baseline),
        )
        if len(stack.tasks) > 1
        else plots.message(
            "train two or more tasks together to compare their masks",
            "Hamming distance between tasks, per layer",
        ),
        plots.layer_lines(
            S.density_per_layer(stack),
            "Density per layer",
            "fraction kept",
            ylim=(0, 1),
            reference=(f"k = {stack.keep:g}", stack.keep),
        ),
        plots.heatmap(
            S.layer_matrix(stack, task_a, "hamming"),
            [f"L{i}" for i in range(stack.num_layers)],
            f"Layer x layer Hamming, {task_a}",
            cmap="magma",
            colorbar="normalised distance",
        ),
        plots.overlay_bitmap(
            S.overlay(stack, task_a, task_b, layer),
            task_a,
            task_b,
            f"{stack.key}, layer {layer}: {task_a} vs {task_b}",
        ),
        plots.keep_rate_bars(
            *S.keep_rates(stack, task_a, layer),
            stack.keep,
            f"Per-neuron keep rates, {task_a}, layer {layer}",
        ),
    ]
    n, shape = len(stack.tasks), "x".join(map(str, stack.shape))
    note = (
        f"**{stack.key}**: {stack.num_layers} layers of {shape} masks, keep k = "
        f"{stack.keep:g}, {n} task{'s' * (n > 1)}. Two independent random masks would "
        f"differ in {baseline:.1%} of their entries; lower means the tasks share more."
    )
    moved = S.start_distance(stack, None if averaged else layer)
    if moved:  # how far training moved each task from its starting masks
        note += (
            "\n\nDistance from the starting masks (the same seeded start for every "
            "task unless saved with mask_init per-task; "
            + where
            + "): "
            + ", ".join(f"{t} {d:.2%}" for t, d in moved.items())
            + "."
        )
    return (note, gr.update(visible=True), *figures)


def build() -> tuple[gr.Dropdown, Refresh]:
    with gr.Row():
        proto = gr.Dropdown([], label="Prototype", scale=4, elem_id="masks-proto")
        refresh = gr.Button("↻ Refresh", size="sm", scale=1)
    with gr.Row():
        key = gr.Dropdown([], label="Masked tensor", scale=2)
        layer = gr.Slider(0, 1, value=0, step=1, label="Layer", scale=2)
        averaged = gr.Checkbox(False, label="Average over layers", scale=1)
        task_a = gr.Dropdown([], label="Task A", scale=2)
        task_b = gr.Dropdown([], label="Task B", scale=2)
    note = gr.Markdown(NO_PROTOTYPES, elem_id="masks-note")
    # the charts are drawn only once a prototype is picked (no untitled blank plots before)
    with gr.Column(visible=False, elem_id="masks-charts") as charts:
        with gr.Row():
            hamming = gr.Plot(show_label=False, elem_id="masks-hamming")
            jaccard = gr.Plot(show_label=False, elem_id="masks-jaccard")
        with gr.Row():
            per_layer = gr.Plot(show_label=False)
            density = gr.Plot(show_label=False)
        with gr.Row():
            layers = gr.Plot(show_label=False)
            overlay = gr.Plot(show_label=False)
        keep = gr.Plot(show_label=False)
    inputs = [proto, key, layer, averaged, task_a, task_b]
    outputs = [note, charts, hamming, jaccard, per_layer, density, layers, overlay, keep]
    private: dict[str, Any] = {"api_visibility": "private"}
    proto.change(controls, proto, [key, layer, task_a, task_b], **private).then(
        render, inputs, outputs, api_visibility="private"
    )
    for control in (key, averaged, task_a, task_b):
        control.input(render, inputs, outputs, **private)
    layer.release(render, inputs, outputs, **private)
    refresh.click(picked_prototype, proto, proto, **private)
    return proto, Refresh(picked_prototype, [proto], [proto])

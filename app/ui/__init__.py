"""The dashboard: a title bar and one tab per module (Launch, Jobs, Sweeps, Masks, Models,
Playground)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from ..auth import Auth
from . import client_api, grow, jobs, launch, masks, models, playground, sweeps
from .common import Ctx

CSS = (Path(__file__).with_name("style.css")).read_text()
#: System fonts only: the page must not fetch anything from another host (it runs offline).
THEME = gr.themes.Soft(
    primary_hue="indigo",
    secondary_hue="orange",
    font=["system-ui", "-apple-system", "Segoe UI", "Roboto", "sans-serif"],
    font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "monospace"],
)
HEAD = '<meta name="description" content="ProPETL Studio">'


def title_bar(auth: Auth) -> str:
    login = "login on" if auth.enabled else "no login (single user)"
    return (
        "<div class='pp-title'><div><h1>ProPETL Studio</h1>"
        "<p>One network, many masks: train many tasks over one shared prototype, "
        "a few KB of masks each.</p></div>"
        f"<div class='pp-links'><a href='/api/docs' target='_blank'>REST API</a>"
        f"<span>{login}</span></div></div>"
    )


def build_ui(auth: Auth) -> gr.Blocks:
    """All tabs, wired together: submit opens the job; clone fills the Launch form."""
    ctx = Ctx(auth)
    with gr.Blocks(title="ProPETL Studio", analytics_enabled=False) as demo:
        gr.HTML(title_bar(auth))
        with gr.Tabs(selected="launch", elem_id="tabs") as tabs:
            with gr.Tab("Launch", id="launch"):
                launch_ui = launch.build(ctx)
            with gr.Tab("Jobs", id="jobs"):
                jobs_ui, _timer = jobs.build(ctx)
            with gr.Tab("Sweeps", id="sweeps") as sweeps_tab:
                sweeps_ui = sweeps.build()
            with gr.Tab("Masks", id="masks") as masks_tab:
                _, masks_fresh = masks.build()
            with gr.Tab("Models", id="models") as models_tab:
                models_proto, models_fresh = models.build(ctx)
                add_task_btn = gr.Button(
                    "Add a task to this prototype", size="sm", elem_id="models-add-task"
                )
            with gr.Tab("Playground", id="playground") as play_tab:
                _, play_fresh = playground.build()
        client_api.install(ctx)
        launch.wire_submit(ctx, launch_ui, tabs, jobs_ui.job)
        launch.wire_sweep(ctx, launch_ui, tabs, sweeps_ui.picker)
        sweeps_tab.select(
            sweeps.reload,
            sweeps_ui.picker,
            [sweeps_ui.picker, sweeps_ui.empty],
            api_visibility="private",
        )

        def clone_into_launch(spec: dict[str, Any] | None) -> list[Any]:
            if not spec:
                return [gr.update()] * (len(launch_ui.form) + 2)
            backbone, tasks, *values = launch.form_values(spec["config"])
            # the tasks' choices are listed afresh: an upload made after the page was drawn
            # must stay chosen
            tasks = gr.update(choices=launch.task_choices(), value=tasks)
            return [spec["name"], backbone, tasks, *values, gr.Tabs(selected="launch")]

        jobs_ui.clone.click(
            jobs.clone_spec, jobs_ui.job, jobs_ui.clone_spec, api_visibility="private"
        ).then(
            clone_into_launch,
            jobs_ui.clone_spec,
            [launch_ui.name, *launch_ui.form, tabs],
            api_visibility="private",
        )

        # Models' "Add a task": Launch in add mode with this prototype (method fields from it)
        add_task_btn.click(
            grow.launch_onto,
            models_proto,
            [launch_ui.mode, launch_ui.base, tabs],
            api_visibility="private",
        )

        # what depends on the registry is drawn for each page load and each opening of a tab,
        # never from the state the server started with
        for tab, fresh in (
            (masks_tab, masks_fresh),
            (models_tab, models_fresh),
            (play_tab, play_fresh),
        ):
            tab.select(fresh.fn, fresh.inputs, fresh.outputs, api_visibility="private")
            demo.load(fresh.fn, fresh.inputs, fresh.outputs, api_visibility="private")
    return demo


__all__ = ["CSS", "HEAD", "THEME", "build_ui"]

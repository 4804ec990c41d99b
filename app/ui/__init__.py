"""The dashboard: a title bar and one tab per module (Launch, Jobs, Sweeps, Masks, Models,
Playground)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from ..auth import Auth
from . import grow, jobs, launch, masks, models, playground, sweeps
from .common import Ctx, prototype_choices

CSS = (Path(__file__).with_name("style.css")).read_text()
THEME = gr.themes.Soft(primary_hue="indigo", secondary_hue="orange",
                       font=[gr.themes.GoogleFont("Inter"), "system-ui", "sans-serif"])
HEAD = '<meta name="description" content="ProPETL Studio">'


def title_bar(auth: Auth) -> str:
    login = "login on" if auth.enabled else "no login (single user)"
    return ("<div class='pp-title'><div><h1>ProPETL Studio</h1>"
            "<p>One network, many masks: train many tasks over one shared prototype, "
            "a few KB of masks each.</p></div>"
            f"<div class='pp-links'><a href='/api/docs' target='_blank'>REST API</a>"
            f"<span>{login}</span></div></div>")


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
                masks_proto, _ = masks.build()
            with gr.Tab("Models", id="models") as models_tab:
                models_proto, _ = models.build(ctx)
                add_task_btn = gr.Button("Add a task to this prototype", size="sm",
                                         elem_id="models-add-task")
            with gr.Tab("Playground", id="playground") as play_tab:
                play_proto, _ = playground.build()
        launch.wire_submit(ctx, launch_ui, tabs, jobs_ui.job)
        launch.wire_sweep(ctx, launch_ui, tabs, sweeps_ui.picker)
        sweeps_tab.select(sweeps.reload, sweeps_ui.picker, [sweeps_ui.picker, sweeps_ui.empty],
                          api_visibility="private")

        def clone_into_launch(spec: dict[str, Any] | None) -> list[Any]:
            if not spec:
                return [gr.update()] * (len(launch_ui.form) + 2)
            values = launch.form_values(spec["config"])
            return [spec["name"], *values, gr.Tabs(selected="launch")]

        jobs_ui.clone.click(jobs.clone_spec, jobs_ui.job, jobs_ui.clone_spec,
                            api_visibility="private").then(
            clone_into_launch, jobs_ui.clone_spec, [launch_ui.name, *launch_ui.form, tabs],
            api_visibility="private")

        # Models' "Add a task": Launch in add mode with this prototype (method fields from it)
        add_task_btn.click(grow.launch_onto, models_proto, [launch_ui.mode, launch_ui.base, tabs],
                           api_visibility="private")

        def fresh_prototypes(current: str | None) -> Any:
            choices = prototype_choices()
            values = [uid for _, uid in choices]
            value = current if current in values else (values[0] if values else None)
            return gr.update(choices=choices, value=value)

        for tab, picker in ((masks_tab, masks_proto), (models_tab, models_proto),
                            (play_tab, play_proto)):
            tab.select(fresh_prototypes, picker, picker, api_visibility="private")
    return demo


__all__ = ["CSS", "HEAD", "THEME", "build_ui"]

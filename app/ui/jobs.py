"""Jobs tab: a live table, one job's page (progress, curves, log, actions) and run comparison."""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

import gradio as gr
import pandas as pd

from .. import plots, views
from ..auth import ForbiddenError
from ..registry import InvalidStateError, NotFoundError
from .common import STATUS_ICON, Ctx, badge, empty_state, job_choices, progress_bar, registry

COLUMNS = ["ID", "Name", "Sweep", "Status", "Progress", "Tasks", "Best dev", "Owner", "Age"]
NO_JOBS = empty_state("No jobs yet — launch one in the <b>Launch</b> tab.")
REFRESH_S = 2.0


@dataclass
class JobsUI:
    job: gr.Dropdown
    clone: gr.Button
    clone_spec: gr.State


# --- the table -------------------------------------------------------------------------

def jobs_frame(limit: int = 100, sweep: int | None = None) -> pd.DataFrame:
    """The jobs table, newest first (only one sweep's jobs when `sweep` is given)."""
    reg = registry()
    rows = []
    for job in reg.list_jobs(limit=limit, sweep_id=sweep):
        best = views.best_dev(reg.metric_series(job.id, split="dev", name="main"))
        progress = f"{100 * job.progress:.0f}%" + (f" · step {job.step}/{job.total_steps}"
                                                   if job.total_steps else "")
        if job.status == "queued":
            progress = views.waiting_text(job)
        rows.append([job.id, job.name, f"#{job.sweep_id}" if job.sweep_id else "",
                     f"{STATUS_ICON.get(job.status, '')} {job.status}", progress,
                     ", ".join(_short(t) for t in job.spec.get("config", {}).get("tasks", [])),
                     "" if best is None else f"{best:.3f}", job.owner, views.age(job.created_at)])
    return pd.DataFrame(rows, columns=COLUMNS)


def _short(task: str) -> str:
    from .launch import task_label

    return task_label(task)


def sweep_filter_choices() -> list[tuple[str, int]]:
    return [("all jobs", 0)] + [(f"sweep #{s.id} · {s.name or 'sweep'}", s.id)
                                for s in registry().list_sweeps()]


def refresh_table(known: list[int], sweep: int | None = None) -> tuple[Any, Any, Any, Any,
                                                                      list[int]]:
    """Table, empty-state visibility, and the job pickers (only re-listed when jobs change)."""
    frame = jobs_frame(sweep=sweep or None)
    ids = [int(i) for i in frame["ID"]]
    pickers: Any = gr.skip()
    if ids != known:
        choices = job_choices()
        pickers = gr.update(choices=choices)
        return (frame, gr.update(visible=frame.empty), pickers, gr.update(choices=choices), ids)
    return frame, gr.update(visible=frame.empty), pickers, gr.skip(), ids


# --- one job ---------------------------------------------------------------------------

def _series(job_id: int) -> views.Series:
    return registry().metric_series(job_id)


def loss_figure(series: views.Series, title: str = "Training loss") -> Any:
    points = series.get(("", "train", "loss"), [])
    curve = {"loss": points} if points else {}
    return plots.curves(curve, title, "loss", empty="the first loss arrives after a few steps")


def dev_figure(series: views.Series, title: str = "Dev metric per task") -> Any:
    curves = {f"{task} ({name})": pts for (task, split, name), pts in series.items()
              if split == "dev" and name != "main" and name == _main_name(series, task)}
    return plots.curves(curves, title, "score", empty="no evaluation yet")


def _main_name(series: views.Series, task: str) -> str:
    """The metric whose values equal the task's 'main' (accuracy, matthews, ...)."""
    main = dict(series.get((task, "dev", "main"), []))
    for (t, split, name), pts in series.items():
        if t == task and split == "dev" and name not in ("main", "combined") and \
                all(abs(main.get(s, v) - v) < 1e-12 for s, v in pts):
            return name
    return "combined"


def header_html(job: Any) -> str:
    config = job.spec.get("config", {})
    tasks = ", ".join(_short(t) for t in config.get("tasks", []))
    propetl = config.get("propetl", {})
    lines = [f'<div class="pp-job-head"><h3>#{job.id} · {html.escape(job.name)} '
             f'{badge(job.status)}</h3>',
             f"<p><b>{html.escape(tasks)}</b> on <b>{html.escape(config.get('backbone', ''))}"
             f"</b> · {html.escape(str(propetl.get('petl', '')))} "
             f"({html.escape(str(propetl.get('sharing', '')))}, keep "
             f"{propetl.get('keep')}) · owner {html.escape(job.owner)} · queue "
             f"{html.escape(job.queue)} · created {views.age(job.created_at)}</p>"]
    if job.cancel_requested and job.status == "running":
        lines.append("<p>Cancel requested: stopping at the next step…</p>")
    if job.status == "failed" and job.error:
        lines.append(f'<p class="pp-error">{html.escape(job.error.splitlines()[0][:300])}</p>')
    return "".join(lines) + "</div>"


def progress_html(job: Any) -> str:
    if job.status == "queued":  # how long, and on which queue (nobody may read it)
        return progress_bar(0, views.waiting_text(job))
    text = f"{100 * job.progress:.0f}% · step {job.step}/{job.total_steps or '?'}"
    if job.phase:
        text += f" · {job.phase}"
    if job.status == "running" and job.eta_seconds:
        text += f" · about {job.eta_seconds:.0f} s left"
    return progress_bar(job.progress, text)


def job_page(job_id: int | None, shown: str) -> tuple[Any, ...]:
    """Header, progress, curves, log and buttons of a job; curves redrawn only on change."""
    hidden = (gr.update(visible=False),) + (gr.skip(),) * 6 + (shown,)
    if not job_id:
        return hidden
    reg = registry()
    try:
        job = reg.get_job(int(job_id))
    except NotFoundError:
        return hidden
    key = f"{job.id}:{reg.count_metric_points(job.id)}:{job.status}"
    figures: tuple[Any, Any] = (gr.skip(), gr.skip())
    if key != shown:
        series = _series(job.id)
        figures = (loss_figure(series), dev_figure(series))
    cancel = gr.update(interactive=job.status in ("queued", "running") and
                       not job.cancel_requested)
    retry = gr.update(interactive=job.status in ("failed", "cancelled"))
    return (gr.update(visible=True), header_html(job) + progress_html(job), *figures,
            views.log_tail(job) or "(no log yet)", cancel, retry, key)


def act(ctx: Ctx, request: gr.Request | None, job_id: int | None, action: str) -> str:
    """Cancel or retry a job (only its owner)."""
    if not job_id:
        return "Open a job first."
    reg = registry()
    try:
        job = reg.get_job(int(job_id))
        ctx.auth.ensure_owner(ctx.username(request), job.owner)
        if action == "cancel":
            job = reg.request_cancel(job.id)
            return (f"Job #{job.id} cancelled." if job.status == "cancelled"
                    else f"Asked job #{job.id} to stop; it saves a checkpoint first")
        job = reg.retry(job.id)
        return f"Job #{job.id} queued again; it resumes from its last checkpoint"
    except (NotFoundError, InvalidStateError, ForbiddenError) as err:
        return f"✗ {err}"


def clone_spec(job_id: int | None) -> dict[str, Any] | None:
    if not job_id:
        return None
    job = registry().get_job(int(job_id))
    return {"name": f"copy of {job.name}", "config": job.spec.get("config", {})}


# --- compare ---------------------------------------------------------------------------

def compare(job_ids: list[int], differences_only: bool) -> tuple[Any, Any, Any]:
    """Overlaid loss and dev curves, and the config diff of the chosen runs."""
    if not job_ids or len(job_ids) < 2:
        message = plots.message("choose two or more runs to compare")
        return message, message, pd.DataFrame()
    reg = registry()
    losses, devs, configs = {}, {}, {}
    for job_id in job_ids:
        job = reg.get_job(int(job_id))
        series = reg.metric_series(job.id)
        label = f"#{job.id} {job.name}"[:40]
        losses[label] = next((p for (t, s, n), p in series.items() if s == "train" and n == "loss"),
                             [])
        for (task, split, name), points in series.items():
            if split == "dev" and name == "main":
                devs[f"#{job.id} {_short(task)}"] = points
        configs[f"#{job.id}"] = job.spec.get("config", {})
    rows = views.config_diff(configs, differences_only)
    frame = pd.DataFrame(rows, columns=["option", *configs]).astype(str)
    if frame.empty:
        frame = pd.DataFrame([["(the configs are identical)", *[""] * len(configs)]],
                             columns=["option", *configs])
    return (plots.curves(losses, "Training loss", "loss"),
            plots.curves(devs, "Dev main metric", "score"), frame)


# --- layout ----------------------------------------------------------------------------

def build(ctx: Ctx) -> tuple[JobsUI, gr.Timer]:
    known = gr.State([])
    shown = gr.State("")
    empty = gr.HTML(NO_JOBS, visible=True, elem_id="jobs-empty")
    sweep_filter = gr.Dropdown(sweep_filter_choices(), value=0, label="Show",
                               elem_id="jobs-sweep-filter", info="all jobs, or one sweep's")
    table = gr.Dataframe(headers=COLUMNS, interactive=False, label="Jobs (refreshes every 2 s)",
                         max_height=300, elem_id="jobs-table", column_widths=[
                             "6%", "21%", "6%", "12%", "13%", "16%", "8%", "8%", "10%"])
    job = gr.Dropdown([], label="Open a job", value=None, elem_id="jobs-open",
                      info="or click a row of the table")
    with gr.Column(visible=False, elem_classes="pp-card") as page:
        head = gr.HTML(elem_id="job-head")
        with gr.Row():
            cancel = gr.Button("Cancel", size="sm", variant="stop")
            retry = gr.Button("Retry", size="sm")
            clone = gr.Button("Clone into Launch", size="sm")
        action_msg = gr.Markdown()
        with gr.Row():
            loss_plot = gr.Plot(show_label=False, elem_id="job-loss")
            dev_plot = gr.Plot(show_label=False, elem_id="job-dev")
        log = gr.Textbox(label="Log (latest events)", lines=8, max_lines=16, interactive=False,
                         elem_id="job-log", autoscroll=True)
    with gr.Accordion("Compare runs", open=False):
        with gr.Row():
            pick = gr.Dropdown([], multiselect=True, label="Runs", scale=4)
            diff_only = gr.Checkbox(True, label="Differences only", scale=1)
            go = gr.Button("Compare", scale=1)
        with gr.Row():
            cmp_loss = gr.Plot(show_label=False)
            cmp_dev = gr.Plot(show_label=False)
        diff = gr.Dataframe(label="Config", interactive=False, wrap=True)
    clone_state = gr.State(None)
    timer = gr.Timer(REFRESH_S)

    page_out = [page, head, loss_plot, dev_plot, log, cancel, retry, shown]
    timer.tick(refresh_table, [known, sweep_filter], [table, empty, job, pick, known],
               api_name="list_jobs", show_progress="hidden")
    sweep_filter.focus(lambda: gr.update(choices=sweep_filter_choices()), None, sweep_filter,
                       api_visibility="private")
    timer.tick(job_page, [job, shown], page_out, api_visibility="private",
               show_progress="hidden")
    job.change(lambda j: job_page(j, ""), job, page_out, api_name="job_details")

    def select_row(frame: pd.DataFrame, evt: gr.SelectData) -> Any:
        row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        return int(frame.iloc[row]["ID"])

    table.select(select_row, table, job, api_visibility="private")

    def do(action: str) -> Any:
        def handler(request: gr.Request, job_id: int | None) -> str:
            return act(ctx, request, job_id, action)
        return handler

    cancel.click(do("cancel"), job, action_msg, api_name="cancel_job")
    retry.click(do("retry"), job, action_msg, api_name="retry_job")
    go.click(compare, [pick, diff_only], [cmp_loss, cmp_dev, diff], api_name="compare_jobs")
    diff_only.change(compare, [pick, diff_only], [cmp_loss, cmp_dev, diff],
                     api_visibility="private")
    return JobsUI(job, clone, clone_state), timer

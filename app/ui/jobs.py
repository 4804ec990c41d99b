"""Jobs tab: a live table, one job's page (progress, curves, log, actions) and run comparison."""

from __future__ import annotations

import hashlib
import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from .. import plots, runs, views
from ..auth import ForbiddenError
from ..registry import InvalidStateError, NotFoundError
from .common import STATUS_ICON, Ctx, badge, empty_state, job_choices, progress_bar, registry
from .runview import run_html

FINISHED = ("succeeded", "failed", "cancelled")
COLUMNS = ["ID", "Name", "Sweep", "Status", "Progress", "Tasks", "Best dev", "Owner", "Age"]
NO_JOBS = empty_state("No jobs yet — launch one in the <b>Launch</b> tab.")
REFRESH_S = 2.0


@dataclass
class JobsUI:
    job: gr.Dropdown
    clone: gr.Button
    clone_spec: gr.State


# --- the table -------------------------------------------------------------------------


def jobs_frame(limit: int = 100, sweep: int | None = None, query: str = "") -> pd.DataFrame:
    """The jobs table, newest first (only one sweep's jobs when `sweep` is given, only those
    matching `query` when it is: see `app.jobsearch`)."""
    from ..jobsearch import search

    reg = registry()
    rows = []
    jobs = reg.list_jobs(limit=500 if query else limit, sweep_id=sweep)
    shown = search(jobs, query)[:limit] if query else jobs
    bests = reg.best_dev_metrics(job.id for job in shown)
    for job in shown:
        best = bests.get(job.id)
        progress = f"{100 * job.progress:.0f}%" + (
            f" · step {job.step}/{job.total_steps}" if job.total_steps else ""
        )
        if job.status == "queued":
            progress = views.waiting_text(job)
        rows.append(
            [
                job.id,
                job.name,
                f"#{job.sweep_id}" if job.sweep_id else "",
                f"{STATUS_ICON.get(job.status, '')} {job.status}",
                progress,
                ", ".join(_short(t) for t in job.spec.get("config", {}).get("tasks", [])),
                "" if best is None else f"{best:.3f}",
                job.owner,
                views.age(job.created_at),
            ]
        )
    return pd.DataFrame(rows, columns=COLUMNS)


def _short(task: str) -> str:
    from .launch import task_label

    return task_label(task)


def sweep_filter_choices() -> list[tuple[str, int]]:
    return [("all jobs", 0)] + [
        (f"sweep #{s.id} · {s.name or 'sweep'}", s.id) for s in registry().list_sweeps()
    ]


def refresh_table(
    known: list[int], sweep: int | None = None, query: str = "", drawn: str = ""
) -> tuple[Any, Any, Any, Any, list[int], str]:
    """Table, empty-state visibility, the job pickers (only re-listed when jobs change), and
    the digest of the table drawn. An unchanged table is not sent again: the browser would
    redraw it every tick (a page left open spent most of a core doing so) and lose the
    user's scroll position."""
    frame = jobs_frame(sweep=sweep or None, query=(query or "").strip())
    ids = [int(i) for i in frame["ID"]]
    digest = hashlib.sha1(frame.to_json(orient="values").encode()).hexdigest()
    table: Any = frame if digest != drawn else gr.skip()
    pickers: Any = gr.skip()
    if ids != known:
        choices = job_choices()
        pickers = gr.update(choices=choices)
        return (
            table,
            gr.update(visible=frame.empty),
            pickers,
            gr.update(choices=choices),
            ids,
            digest,
        )
    return table, gr.update(visible=frame.empty), pickers, gr.skip(), ids, digest


# --- one job ---------------------------------------------------------------------------


def _series(job_id: int) -> views.Series:
    return registry().metric_series(job_id)


def loss_figure(series: views.Series, title: str = "Training loss per task") -> Any:
    """One loss curve per task (batches hold one task each); the pooled loss for runs that
    recorded no per-task loss."""
    curves = {
        _short(task): pts
        for (task, split, name), pts in series.items()
        if split == "train" and name == "loss" and task
    }
    if not curves:
        points = series.get(("", "train", "loss"), [])
        curves = {"loss (all tasks)": points} if points else {}
    return plots.curves(curves, title, "loss", empty="the first loss arrives after a few steps")


def dev_figure(
    series: views.Series,
    title: str = "Dev metric per task",
    baselines: dict[str, float] | None = None,
) -> Any:
    """Each task's dev main metric, with its majority-class accuracy as a dotted line."""
    curves = {
        f"{task} ({name})": pts
        for (task, split, name), pts in series.items()
        if split == "dev" and name != "main" and name == _main_name(series, task)
    }
    references = [
        (f"{task} majority class", value)
        for task, value in (baselines or {}).items()
        if any(k.startswith(f"{task} (") for k in curves)
    ]
    return plots.curves(curves, title, "score", empty="no evaluation yet", references=references)


def dev_baselines(view: dict[str, Any]) -> dict[str, float]:
    """Majority-class accuracy on the dev split, per classification task."""
    out = {}
    for task in view["tasks"]:
        dev = (task.get("majority") or {}).get("dev")
        if dev:
            out[task["task"]] = dev["accuracy"]
    return out


def _main_name(series: views.Series, task: str) -> str:
    """The metric whose values equal the task's 'main' (accuracy, matthews, ...)."""
    main = dict(series.get((task, "dev", "main"), []))
    for (t, split, name), pts in series.items():
        if (
            t == task
            and split == "dev"
            and name not in ("main", "combined")
            and all(abs(main.get(s, v) - v) < 1e-12 for s, v in pts)
        ):
            return name
    return "combined"


def header_html(job: Any) -> str:
    config = job.spec.get("config", {})
    tasks = ", ".join(_short(t) for t in config.get("tasks", []))
    propetl = config.get("propetl", {})
    lines = [
        f'<div class="pp-job-head"><h3>#{job.id} · {html.escape(job.name)} '
        f"{badge(job.status)}</h3>",
        f"<p><b>{html.escape(tasks)}</b> on <b>{html.escape(config.get('backbone', ''))}"
        f"</b> · {html.escape(str(propetl.get('petl', '')))} "
        f"({html.escape(str(propetl.get('sharing', '')))}, keep "
        f"{propetl.get('keep')}) · owner {html.escape(job.owner)} · queue "
        f"{html.escape(job.queue)} · created {views.age(job.created_at)}"
        + (f" · {duration_text(job)}" if job.started_at else "")
        + "</p>",
    ]
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


def duration_text(job: Any) -> str:
    """How long the job ran (or has been running)."""
    from datetime import datetime, timezone

    if not job.started_at:
        return ""
    end = job.finished_at or datetime.now(timezone.utc)
    start = job.started_at
    if start.tzinfo is None:
        start = start.replace(tzinfo=timezone.utc)
    if end.tzinfo is None:
        end = end.replace(tzinfo=timezone.utc)
    seconds = max(0.0, (end - start).total_seconds())
    text = f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"
    return f"ran {text}" if job.finished_at else f"running for {text}"


def job_page(job_id: int | None, shown: str) -> tuple[Any, ...]:
    """Header, progress, curves, run page, log and buttons of a job; curves and run page
    redrawn only on change."""
    hidden = (gr.update(visible=False),) + (gr.skip(),) * 7 + (shown,)
    if not job_id:
        return hidden
    reg = registry()
    try:
        job = reg.get_job(int(job_id))
    except NotFoundError:
        return hidden
    key = f"{job.id}:{reg.count_metric_points(job.id)}:{job.status}"
    if key == shown and job.status in FINISHED:  # nothing on the page can change any more
        return (gr.skip(),) * 8 + (shown,)
    figures: tuple[Any, Any, Any] = (gr.skip(), gr.skip(), gr.skip())
    if key != shown:
        series = _series(job.id)
        view = runs.run_view(reg, job)
        figures = (
            loss_figure(series),
            dev_figure(series, baselines=dev_baselines(view)),
            run_html(view),
        )
    cancel = gr.update(interactive=job.status in ("queued", "running") and not job.cancel_requested)
    retry = gr.update(interactive=job.status in ("failed", "cancelled"))
    return (
        gr.update(visible=True),
        header_html(job) + progress_html(job),
        *figures,
        views.log_tail(job, newest_first=True) or "(no log yet)",
        cancel,
        retry,
        key,
    )


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
            return (
                f"Job #{job.id} cancelled."
                if job.status == "cancelled"
                else f"Asked job #{job.id} to stop; it saves a checkpoint first"
            )
        job = reg.retry(job.id)
        return f"Job #{job.id} queued again; it resumes from its last checkpoint"
    except (NotFoundError, InvalidStateError, ForbiddenError) as err:
        return f"✗ {err}"


def notes_of(job_id: int | None) -> tuple[str, str]:
    """The tags (comma-separated) and note of a job, for its page."""
    if not job_id:
        return "", ""
    try:
        job = registry().get_job(int(job_id))
    except NotFoundError:
        return "", ""
    return ", ".join(job.tags or []), job.note or ""


def save_notes(job_id: int | None, tags: str, note: str) -> str:
    """Keep a job's tags and note (the job's owner, through the access policy)."""
    from .guard import current_access

    if not job_id:
        return "Open a job first."
    access = current_access()
    try:
        job = access.job(int(job_id))
        job = access.registry.annotate_job(job.id, tags=(tags or "").split(","), note=note)
    except NotFoundError as err:
        return f"✗ {err}"
    shown = ", ".join(job.tags) or "no tags"
    return f"Saved: {shown}; note of {len(job.note)} characters."


def metrics_file(job_id: int | None) -> tuple[Any, str]:
    """A job's metric points as a CSV file to download."""
    import tempfile

    from ..jobsearch import metrics_csv
    from .guard import current_access

    if not job_id:
        return gr.update(visible=False), "Open a job first."
    access = current_access()
    try:
        job = access.job(int(job_id))
    except NotFoundError as err:
        return gr.update(visible=False), f"✗ {err}"
    folder = Path(tempfile.mkdtemp(prefix="metrics-"))
    path = folder / f"job-{job.id}-metrics.csv"
    path.write_text(metrics_csv(access.registry, job))
    return gr.update(value=str(path), visible=True), f"{path.name} is ready below."


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
        losses[label] = next(
            (p for (t, s, n), p in series.items() if s == "train" and n == "loss"), []
        )
        for (task, split, name), points in series.items():
            if split == "dev" and name == "main":
                devs[f"#{job.id} {_short(task)}"] = points
        config = dict(job.spec.get("config", {}))
        config["tasks"] = [_short(t) for t in config.get("tasks", [])]  # one name per task
        configs[f"#{job.id}"] = config
    rows = views.config_diff(configs, differences_only)
    frame = pd.DataFrame(rows, columns=["option", *configs]).astype(str)
    if frame.empty:
        frame = pd.DataFrame(
            [["(the configs are identical)", *[""] * len(configs)]], columns=["option", *configs]
        )
    return (
        plots.curves(losses, "Training loss", "loss"),
        plots.curves(devs, "Dev main metric", "score"),
        frame,
    )


# --- layout ----------------------------------------------------------------------------


def build(ctx: Ctx) -> tuple[JobsUI, gr.Timer]:
    known = gr.State([])
    drawn = gr.State("")  # digest of the table the page shows
    shown = gr.State("")
    empty = gr.HTML(NO_JOBS, visible=True, elem_id="jobs-empty")
    with gr.Row():
        sweep_filter = gr.Dropdown(
            sweep_filter_choices(),
            value=0,
            label="Show",
            scale=1,
            elem_id="jobs-sweep-filter",
            info="all jobs, or one sweep's",
        )
        query = gr.Textbox(
            label="Search",
            scale=2,
            elem_id="jobs-search",
            placeholder="words, or status:failed task:bbc_news tag:baseline owner:alice sweep:3",
            info="names, tasks, owners, tags and notes",
        )
    table = gr.Dataframe(
        headers=COLUMNS,
        interactive=False,
        label="Jobs (refreshes every 2 s)",
        max_height=300,
        elem_id="jobs-table",
        column_widths=["5%", "17%", "6%", "11%", "20%", "15%", "7%", "8%", "11%"],
    )
    job = gr.Dropdown(
        [], label="Open a job", value=None, elem_id="jobs-open", info="or click a row of the table"
    )
    with gr.Column(visible=False, elem_classes="pp-card") as page:
        head = gr.HTML(elem_id="job-head")
        with gr.Row():
            cancel = gr.Button("Cancel", size="sm", variant="stop")
            retry = gr.Button("Retry", size="sm")
            clone = gr.Button("Clone into Launch", size="sm")
        action_msg = gr.Markdown()
        with gr.Row(equal_height=False):
            tags_box = gr.Textbox(
                label="Tags",
                placeholder="comma-separated, e.g. baseline, v2",
                scale=2,
                elem_id="job-tags",
            )
            note_box = gr.Textbox(label="Note", lines=2, scale=3, elem_id="job-note")
            with gr.Column(scale=1):
                save_btn = gr.Button("Save tags and note", size="sm", elem_id="job-save-notes")
                csv_btn = gr.Button("Metrics (.csv)", size="sm", elem_id="job-csv")
        notes_msg = gr.Markdown(elem_id="job-notes-msg")
        csv_file = gr.File(
            label="Metrics", interactive=False, elem_id="job-csv-file", height=80, visible=False
        )
        with gr.Row():
            loss_plot = gr.Plot(show_label=False, elem_id="job-loss")
            dev_plot = gr.Plot(show_label=False, elem_id="job-dev")
        run = gr.HTML(elem_id="job-run")
        log = gr.Textbox(
            label="Log (newest first)",
            lines=8,
            max_lines=16,
            interactive=False,
            elem_id="job-log",
            autoscroll=False,
        )
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

    page_out = [page, head, loss_plot, dev_plot, run, log, cancel, retry, shown]
    timer.tick(
        refresh_table,
        [known, sweep_filter, query, drawn],
        [table, empty, job, pick, known, drawn],
        api_visibility="private",
        show_progress="hidden",
    )
    sweep_filter.focus(
        lambda: gr.update(choices=sweep_filter_choices()),
        None,
        sweep_filter,
        api_visibility="private",
    )
    timer.tick(job_page, [job, shown], page_out, api_visibility="private", show_progress="hidden")
    job.change(lambda j: job_page(j, ""), job, page_out, api_visibility="private")
    job.change(notes_of, job, [tags_box, note_box], api_visibility="private")
    job.change(lambda: gr.update(visible=False), None, csv_file, api_visibility="private")
    save_btn.click(save_notes, [job, tags_box, note_box], notes_msg, api_visibility="private")
    csv_btn.click(metrics_file, job, [csv_file, notes_msg], api_visibility="private")

    def select_row(frame: pd.DataFrame, evt: gr.SelectData) -> Any:
        row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        return int(frame.iloc[row]["ID"])

    table.select(select_row, table, job, api_visibility="private")

    def do(action: str) -> Any:
        def handler(request: gr.Request, job_id: int | None) -> str:
            return act(ctx, request, job_id, action)

        return handler

    cancel.click(do("cancel"), job, action_msg, api_visibility="private")
    retry.click(do("retry"), job, action_msg, api_visibility="private")
    go.click(compare, [pick, diff_only], [cmp_loss, cmp_dev, diff], api_visibility="private")
    diff_only.change(
        compare, [pick, diff_only], [cmp_loss, cmp_dev, diff], api_visibility="private"
    )
    return JobsUI(job, clone, clone_state), timer

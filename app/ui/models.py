"""Models tab: prototypes, their tasks with metrics and bytes on disk, downloads, exports
(ProPETL, PEFT LoRA adapter, merged HF model), deletion."""

from __future__ import annotations

from typing import Any

import gradio as gr
import pandas as pd

from .. import bundles, exports, views
from ..auth import ForbiddenError
from ..registry import NotFoundError
from .common import Ctx, Refresh, empty_state, fmt_bytes, picked_prototype, registry

NO_MODELS = empty_state("No trained prototypes yet — a job that succeeds registers one here.")


def prototypes_frame() -> pd.DataFrame:
    rows = []
    for p in registry().list_prototypes():
        summary = views.prototype_summary(p)
        ratio = summary["ratio_to_baseline"]
        rows.append(
            [
                p.uid[:8],
                p.backbone.name,
                f"{p.petl_kind} / {p.sharing}",
                summary["keep"],
                ", ".join(summary["tasks"]),
                f"{100 * ratio:.1f}%" if ratio else "",
                f"#{p.job_id}" if p.job_id else "",
                views.age(p.created_at),
            ]
        )
    return pd.DataFrame(
        rows,
        columns=[
            "Prototype",
            "Backbone",
            "PETL / sharing",
            "Keep",
            "Tasks",
            "Storage vs ordinary",
            "Job",
            "Created",
        ],
    )


def _metric_text(metrics: dict[str, Any]) -> str:
    return ", ".join(
        f"{k} {v:.3f}"
        for k, v in metrics.items()
        if k not in ("main", "combined") and isinstance(v, (int, float))
    )


def default_format(petl_kind: str | None) -> str:
    """The export format a prototype's tasks can always be written as: PEFT for LoRA tasks,
    the ProPETL task folder for adapters and prefixes (which PEFT cannot hold)."""
    return "peft" if petl_kind == "lora" else "propetl"


def detail(uid: str | None) -> tuple[str, pd.DataFrame, Any, Any]:
    """A prototype's storage summary, its tasks table, the task picker and the export format
    that fits its tasks."""
    if not uid:
        return "", pd.DataFrame(), gr.update(choices=[], value=None), gr.update()
    proto = registry().get_prototype(uid)
    info = views.prototype_detail(proto)
    storage = info["storage"] or {}
    disk = storage.get("disk_bytes") or {}
    shared = disk.get("prototype", 0) + disk.get("config", 0)
    md = (
        f"**{proto.uid}** · {proto.petl_kind} ({proto.sharing}, keep {info['keep']}) on "
        f"**{proto.backbone.name}** · shared prototype {proto.prototype_params:,} params "
        f"({fmt_bytes(shared)} on disk) · mask bits per task "
        f"{storage.get('mask_bits_per_task', 0):,}"
    )
    # in the order the tasks were added, each with the job that trained it
    jobs = {
        m.task.name: (f"#{m.job_id}" if m.job_id else "", views.age(m.created_at))
        for m in proto.mask_sets
    }
    rows = [
        [
            m["task"],
            _metric_text(m["dev_metrics"]),
            _metric_text(m["test_metrics"]),
            f"{m['mask_bits']:,}",
            fmt_bytes(m["mask_bytes"]),
            fmt_bytes(m["disk_bytes"]),
            *jobs.get(m["task"], ("", "")),
        ]
        for m in info["mask_sets"]
    ]
    frame = pd.DataFrame(
        rows,
        columns=[
            "Task",
            "Dev",
            "Test",
            "Mask bits",
            "Masks",
            "Task folder on disk",
            "Trained by job",
            "Added",
        ],
    )
    tasks = [m["task"] for m in info["mask_sets"]]
    return (
        md,
        frame,
        gr.update(choices=tasks, value=tasks[0] if tasks else None),
        gr.update(value=default_format(proto.petl_kind)),
    )


def download(uid: str | None, task: str | None, whole: bool) -> tuple[Any, str]:
    if not uid:
        return None, "Choose a prototype first."
    try:
        proto = registry().get_prototype(uid)
        path = bundles.bundle_zip(proto) if whole else bundles.task_zip(proto, task or "")
    except (NotFoundError, FileNotFoundError) as err:
        return None, f"✗ {err}"
    return str(path), f"{path.name} ({fmt_bytes(path.stat().st_size)}) is ready below."


EXPORT_FORMATS = [
    ("ProPETL task folder", "propetl"),
    ("PEFT LoRA adapter", "peft"),
    ("merged HF model", "merged"),
]


def export(uid: str | None, task: str | None, fmt: str) -> tuple[Any, str]:
    """One task as a zip in `fmt`; a format that cannot hold the task says why."""
    if not uid or not task:
        return None, "Choose a prototype and a task first."
    try:
        path = exports.export_zip(registry().get_prototype(uid), task, fmt)
    except (NotFoundError, FileNotFoundError, exports.ExportError) as err:
        return None, f"✗ {err}"
    return str(path), f"{path.name} ({fmt_bytes(path.stat().st_size)}) is ready below."


def delete(
    ctx: Ctx, request: gr.Request | None, uid: str | None, task: str | None, confirmed: bool
) -> str:
    """Delete a task's masks (only the owner of the job that trained them)."""
    if not uid or not task:
        return "Choose a prototype and a task first."
    if not confirmed:
        return "Tick “I understand” to delete."
    reg = registry()
    try:
        proto = reg.get_prototype(uid)
        mask_set = next(m for m in proto.mask_sets if m.task.name == task)
        owner = reg.get_job(proto.job_id).owner if proto.job_id else None
        ctx.auth.ensure_owner(ctx.username(request), owner)
        reg.delete_mask_set(mask_set.id)
    except (NotFoundError, ForbiddenError, StopIteration) as err:
        return f"✗ {err or 'no such task'}"
    from ..playground import get_engine

    get_engine().forget(uid)
    return f"Deleted the masks of **{task}** from {uid[:8]}."


def build(ctx: Ctx) -> tuple[gr.Dropdown, Refresh]:
    # drawn empty: the rows and choices are filled for each page load (`Refresh`)
    empty = gr.HTML(NO_MODELS, visible=False, elem_id="models-empty")
    table = gr.Dataframe(
        prototypes_frame().head(0), interactive=False, label="Prototypes", max_height=260
    )
    with gr.Row():
        proto = gr.Dropdown([], label="Prototype", scale=4, elem_id="models-proto")
        refresh = gr.Button("↻ Refresh", size="sm", scale=1)
    summary = gr.Markdown()
    tasks = gr.Dataframe(interactive=False, label="Tasks")
    with gr.Row():
        task = gr.Dropdown([], label="Task", scale=2)
        get_task = gr.Button("Download task masks (.zip)", size="sm", scale=1)
        get_all = gr.Button("Download whole bundle (.zip)", size="sm", scale=1)
    with gr.Row():
        fmt = gr.Radio(
            EXPORT_FORMATS,
            value="propetl",
            label="Export the task as",
            scale=3,
            elem_id="models-export-format",
            info="PEFT and merged hold LoRA tasks only (same logits)",
        )
        get_export = gr.Button("Export task (.zip)", size="sm", scale=1, elem_id="models-export")
    message = gr.Markdown(elem_id="models-message")
    file = gr.File(label="Download", interactive=False, elem_id="models-file")
    with gr.Accordion("Delete a task's masks", open=False), gr.Row():
        confirm = gr.Checkbox(False, label="I understand this removes the task's files")
        remove = gr.Button("Delete task masks", variant="stop", size="sm")
    private: dict[str, Any] = {"api_visibility": "private"}

    def reload(current: str | None = None) -> tuple[Any, Any, Any]:
        fresh = prototypes_frame()
        return fresh, gr.update(visible=fresh.empty), picked_prototype(current)

    refresh.click(reload, proto, [table, empty, proto], **private)
    proto.change(detail, proto, [summary, tasks, task, fmt], api_visibility="private")
    get_task.click(
        lambda u, t: download(u, t, False), [proto, task], [file, message], api_visibility="private"
    )
    get_all.click(
        lambda u, t: download(u, t, True), [proto, task], [file, message], api_visibility="private"
    )
    get_export.click(export, [proto, task, fmt], [file, message], api_visibility="private")

    def on_delete(request: gr.Request, uid: str | None, name: str | None, ok: bool) -> str:
        return delete(ctx, request, uid, name, ok)

    remove.click(on_delete, [proto, task, confirm], message, api_visibility="private").then(
        detail, proto, [summary, tasks, task, fmt], **private
    ).then(reload, proto, [table, empty, proto], **private)
    return proto, Refresh(reload, [proto], [table, empty, proto])

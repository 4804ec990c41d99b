"""Launch tab: pick backbone and tasks, set the options (generated), see the storage, submit."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd
from pydantic import ValidationError

from ..datacards import user_task
from ..settings import get_settings
from ..specs import DATA_SUFFIXES, JobSpec, describe_errors
from ..uploads import (
    UploadNotFound,
    safe_upload_name,
    store_in,
    task_name,
)
from . import cards, forms, grow, presets
from .common import Ctx, job_choices, problems_md, registry
from .estimate import safe_estimate_md
from .guard import current_access

PAGE = 5
SECTION_TITLES = {
    "method": "Method: the shared prototype and its masks",
    "training": "Training",
    "generation": "Generation: text-to-text tasks (headlines, summaries, "
    "translation) and generative backbones",
    "advanced": "Advanced",
}
#: Form fields in the order they are drawn (section by section).
SPECS = [s for section in SECTION_TITLES for s in forms.config_fields() if s.section == section]


@dataclass
class SweepForm:
    """Up to two swept fields with their values, and the sweep's launch button."""

    fields: list[gr.Dropdown]
    values: list[gr.Textbox]
    status: gr.Markdown
    submit: gr.Button


@dataclass
class LaunchUI:
    backbone: gr.Dropdown
    tasks: gr.Dropdown
    name: gr.Textbox
    queue: gr.Textbox
    fields: list[gr.components.Component]
    status: gr.Markdown
    submit: gr.Button
    sweep: SweepForm | None = None
    mode: gr.Radio | None = None  # new prototype / add tasks to one (`grow`)
    base: gr.Dropdown | None = None

    @property
    def form(self) -> list[gr.components.Component]:
        return [self.backbone, self.tasks, *self.fields]


# --- tasks: catalog, preview, upload ---------------------------------------------------


def _uploads() -> Path:
    """The current user's uploads folder (each user has their own)."""
    return current_access().upload_folder()


def task_choices() -> list[tuple[str, str]]:
    """Catalog tasks, then the current user's uploads (value: the upload's name, which is
    how a job spec names it; never a server path)."""
    from propetl.data import task_names

    out = [(name, name) for name in task_names()]
    out += [(f"{p.stem} (uploaded {p.suffix[1:]})", p.name) for p in current_access().uploads()]
    return out


def fresh_task_choices() -> Any:
    """The task picker listed for the user of this page (their uploads). The value is left
    alone: this answers a focus, and a pick made before the answer arrives must stand."""
    return gr.update(choices=task_choices())


def _user_file(task: str) -> str:
    """The server file of the current user's upload `task`, or a catalog name unchanged;
    any other name is refused (the dashboard reads only the user's uploads)."""
    return user_task(current_access(), task)


def backbone_choices() -> list[str]:
    from propetl.backbones import known_backbones

    return [b.name for b in known_backbones()]


def task_label(task: str) -> str:
    """The one name of a task (`reviews` for the upload `reviews.csv`)."""
    return task_name(task)


def tasks_md(tasks: list[str]) -> str:
    """A table of the chosen tasks: source, labels, sizes, metric."""
    from propetl.data import get_task_info

    if not tasks:
        return (
            "*Pick at least one task: the masks of each are trained together over one prototype.*"
        )
    rows = []
    for task in tasks:
        try:
            info = _file_info(task) if _is_file(task) else get_task_info(_user_file(task))
        except (ValueError, UploadNotFound) as err:
            rows.append(f"| {task} | {err} | | |")
            continue
        labels = (
            "text → text"
            if info.generative
            else ", ".join(info.label_names)
            if info.label_names
            else "regression"
        )
        sizes = " / ".join(f"{v:,}" for v in (info.sizes or {}).values()) or "hub"
        rows.append(f"| {task_label(task)} | {labels} | {sizes} | {info.main_metric} |")
    return "| task | labels | train / dev / test | metric |\n|---|---|---|---|\n" + "\n".join(rows)


def _is_file(task: str) -> bool:
    return Path(task).suffix.lower() in DATA_SUFFIXES


def _file_info(task: str) -> Any:
    """The info (labels, split sizes) of an uploaded file, read once per file version."""
    try:
        path = Path(_user_file(task))
    except UploadNotFound as err:
        raise ValueError(str(err)) from None
    return _file_info_cached(str(path), path.stat().st_mtime_ns if path.is_file() else 0)


@lru_cache(maxsize=32)
def _file_info_cached(path: str, _version: int) -> Any:
    from propetl.data import load_user_file

    return load_user_file(path).info


def generation_open(backbone: str | None, tasks: list[str] | None) -> Any:
    """Open the Generation section when a chosen task is text-to-text or the backbone
    generates; leave it as it is otherwise."""
    from propetl.backbones import is_generative
    from propetl.data import get_task_info

    def text_to_text(task: str) -> bool:
        try:
            return get_task_info(task).generative
        except ValueError:  # a user's file or an unknown name: the table says what is wrong
            return False

    from ..specs import backbone_problem

    try:  # a folder outside PROPETL_BACKBONE_DIRS is not read
        generates = (
            bool(backbone)
            and not backbone_problem(backbone, paths=False)
            and is_generative(backbone)
        )
    except Exception:  # a hub name that cannot be read offline: submission reports it
        generates = False
    if generates or any(text_to_text(t) for t in tasks or []):
        return gr.update(open=True)
    return gr.update()


@lru_cache(maxsize=6)
def _train_frame(task: str) -> pd.DataFrame:
    from propetl.data import load_task

    data = load_task(task)
    frame = data.splits["train"].to_pandas()
    if data.info.label_names:
        names = data.info.label_names
        frame["label"] = [names[int(i)] for i in frame["label"]]
    return frame


def preview_choice(tasks: list[str] | None) -> Any:
    """The preview follows the last chosen task (its choices re-listed: it may be new)."""
    return gr.update(choices=task_choices(), value=(tasks or [None])[-1])


def preview(task: str | None, page: int) -> tuple[pd.DataFrame | None, str, int]:
    """One page of a task's training examples, its position, and the clamped page number."""
    if not task:
        return None, "*Choose a task to preview.*", 0
    try:
        frame = _train_frame(_user_file(task))
    except Exception as err:  # hub task offline, unreadable file, not the user's upload
        return None, f"cannot preview {task_label(task)}: {err}", 0
    pages = max(1, -(-len(frame) // PAGE))
    page = max(0, min(int(page or 0), pages - 1))
    rows = frame.iloc[page * PAGE : (page + 1) * PAGE]
    return rows, f"page {page + 1} of {pages:,} ({len(frame):,} training examples)", page


def _how_kept(target: Path, asked: str) -> str:
    """What the upload message says when the file was not kept under the name it came with."""
    if target.name == asked:
        return ""
    if re.fullmatch(re.escape(Path(asked).stem) + r"-\d+", target.stem):
        return f" (a new version of {asked})"
    return f" (the same content as {target.name}, uploaded before: reused)"


def upload(file: str | None, selected: list[str]) -> tuple[str, Any]:
    """Validate an uploaded file; when clean, keep it and add it to the chosen tasks."""
    from propetl.data import load_user_file, validate_user_file

    if not file:
        return "", gr.update()
    source = Path(file)
    problems = validate_user_file(source)
    if problems:
        return problems_md(
            f"✗ {source.name}: {len(problems)} problem(s) to fix", problems
        ), gr.update()
    target = store_in(_uploads(), source)
    info = load_user_file(target).info
    labels = ", ".join(info.label_names) if info.label_names else "regression"
    sizes = ", ".join(f"{k} {v}" for k, v in (info.sizes or {}).items())
    chosen = [*(t for t in selected or [] if t != target.name), target.name]
    version = _how_kept(target, safe_upload_name(source.name))
    message = (
        f"✓ **{target.name}** is ready as task `{target.stem}`{version}: labels "
        f"{labels}; {sizes}. Added to the tasks above."
    )
    return message, gr.update(choices=task_choices(), value=chosen)


# --- the spec --------------------------------------------------------------------------


def spec_dict(
    name: str, queue: str, backbone: str, tasks: list[str], values: list[Any]
) -> dict[str, Any]:
    config = forms.to_config(SPECS, values)
    config.update(backbone=backbone, tasks=list(tasks or []))
    return {"name": name or "", "queue": queue or None, "config": config}


def storage(backbone: str, tasks: list[str], *values: Any) -> str:
    from ..specs import backbone_problem

    refused = backbone_problem(backbone or "", paths=False)
    if refused:  # a server folder outside the allowed ones is not even looked at
        return f"*No estimate yet: {refused}*"
    config = forms.to_config(SPECS, list(values)).get("propetl", {})
    return safe_estimate_md(backbone or "", config, len(tasks or []))


def estimate_any(mode: str, base: str | None, backbone: str, tasks: list[str], *values: Any) -> str:
    """The storage estimate: of a new prototype, or only the bytes added onto one."""
    if mode == grow.ADD:
        return grow.added_estimate(base, tasks)
    return storage(backbone, tasks, *values)


def submit(
    ctx: Ctx,
    request: gr.Request | None,
    name: str,
    queue: str,
    backbone: str,
    tasks: list[str],
    values: list[Any],
) -> tuple[str, Any, Any]:
    """Validate and queue; returns (message, tab switch, job to open)."""
    data = spec_dict(name, queue, backbone, tasks, values)
    data["owner"] = ctx.user(request)
    try:
        spec = JobSpec.model_validate(data, context={"owner": data["owner"]})
        job_id = registry().submit_job(spec)
    except ValidationError as err:
        return (
            problems_md("✗ Fix these before launching:", describe_errors(err).splitlines()),
            gr.update(),
            gr.update(),
        )
    except Exception as err:  # the broker is down
        return f"✗ could not queue the job: {err}", gr.update(), gr.update()
    return (
        f"✓ Job **#{job_id}** queued. Opening it in the Jobs tab…",
        gr.Tabs(selected="jobs"),
        gr.update(choices=job_choices(), value=job_id),
    )


def sweep_field_choices() -> list[tuple[str, str]]:
    """Fields a sweep may vary: the form's options, then the tasks."""
    return [(f"{s.label} ({s.key})", s.key) for s in SPECS] + [("Tasks (one per job)", "tasks")]


def submit_sweep(
    ctx: Ctx,
    request: gr.Request | None,
    name: str,
    queue: str,
    backbone: str,
    tasks: list[str],
    values: list[Any],
    swept: list[tuple[str | None, str]],
) -> tuple[str, Any, Any]:
    """Validate every combination and queue the sweep; returns (message, tab, sweep to open)."""
    from ..sweeps import SweepSpec, parse_values

    grid = {field: parse_values(text or "") for field, text in swept if field}
    data = {
        "name": name or "",
        "owner": ctx.user(request),
        "grid": grid,
        "base": spec_dict(name, queue, backbone, tasks, values),
    }
    try:
        sweep_id = registry().create_sweep(
            SweepSpec.model_validate(data, context={"owner": data["owner"]})
        )
    except ValidationError as err:
        return (
            problems_md(
                "✗ Fix these before launching the sweep:", describe_errors(err).splitlines()
            ),
            gr.update(),
            gr.update(),
        )
    except Exception as err:  # the broker is down
        return f"✗ could not queue the sweep: {err}", gr.update(), gr.update()
    from .sweeps import sweep_choices

    count = len(registry().get_sweep(sweep_id).jobs)
    return (
        f"✓ Sweep **#{sweep_id}** queued ({count} jobs). Opening it in the Sweeps tab…",
        gr.Tabs(selected="sweeps"),
        gr.update(choices=sweep_choices(), value=sweep_id),
    )


def method_fields(petl: str | None) -> list[Any]:
    """Show the sizes of the chosen PETL kind only (bottleneck for adapters, rank for LoRA)."""
    return [
        gr.update(visible=forms.shown_for(s, petl)) if s.key in forms.METHOD_ONLY else gr.skip()
        for s in SPECS
    ]


def form_values(config: dict[str, Any]) -> list[Any]:
    """Launch form values (backbone, tasks, fields) of a stored config, for clone."""
    return [
        config.get("backbone"),
        list(config.get("tasks", [])),
        *forms.from_config(SPECS, config),
    ]


def apply_preset(name: str | None) -> list[Any]:
    """Set the options a preset names; leave the others as they are."""
    if not name:
        return [gr.update()] * (2 + len(SPECS))
    values = presets.load_preset(name)
    out: list[Any] = [
        values.get("backbone", gr.update()),
        values["tasks"] if "tasks" in values else gr.update(),
    ]
    out += [values[s.key] if s.key in values else gr.update() for s in SPECS]
    return out


def save_preset(name: str, backbone: str, tasks: list[str], *values: Any) -> tuple[str, Any]:
    flat = {s.key: v for s, v in zip(SPECS, values, strict=True)}
    flat.update(backbone=backbone, tasks=list(tasks or []))
    try:
        saved = presets.save_preset(name or "", flat)
    except ValueError as err:
        return f"✗ {err}", gr.update()
    return f"✓ saved preset **{saved}**", gr.update(choices=presets.list_presets(), value=saved)


# --- layout ----------------------------------------------------------------------------


def build(ctx: Ctx) -> LaunchUI:
    fields: list[gr.components.Component] = []
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            mode, base, base_info = grow.build()
            with gr.Group():
                with gr.Row():
                    backbone = gr.Dropdown(
                        backbone_choices(),
                        value="minilm-l6",
                        label="Backbone",
                        allow_custom_value=True,
                        info="frozen encoder, T5 or decoder LLM; a hub name or folder works too",
                        elem_id="launch-backbone",
                    )
                    tasks = gr.Dropdown(
                        task_choices(),
                        value=["rotten_tomatoes"],
                        multiselect=True,
                        label="Tasks",
                        info="each gets its own masks over one prototype",
                        elem_id="launch-tasks",
                    )
                tasks_table = gr.Markdown(
                    tasks_md(["rotten_tomatoes"]), elem_id="launch-tasks-table"
                )
                cut_warning = gr.Markdown(elem_id="launch-cut-warning")
            with gr.Accordion(
                "Preview a task's data and its dataset card", open=False, elem_id="launch-preview"
            ) as preview_box:
                with gr.Row():
                    preview_task = gr.Dropdown(
                        task_choices(),
                        value="rotten_tomatoes",
                        label="Task",
                        scale=3,
                        elem_id="launch-preview-task",
                    )
                    prev_btn = gr.Button("◀ Previous", size="sm", scale=1)
                    next_btn = gr.Button("Next ▶", size="sm", scale=1)
                first_rows, first_info, _ = preview("rotten_tomatoes", 0)
                page = gr.State(0)
                page_info = gr.Markdown(first_info, elem_id="launch-preview-info")
                rows = gr.Dataframe(
                    first_rows,
                    interactive=False,
                    wrap=True,
                    max_height=320,
                    elem_id="launch-preview-rows",
                )
                gr.Markdown("#### Dataset card")
                card = gr.Markdown(
                    "*The card appears when a task is chosen.*", elem_id="launch-card"
                )
            with gr.Accordion("Add your own task (CSV / TSV / JSONL)", open=False):
                gr.Markdown(
                    "Columns: `text` (and `text_pair` for pairs) and `label`; an "
                    "optional `split` column with train / dev / test."
                )
                upload_file = gr.File(
                    label="Data file",
                    file_types=list(DATA_SUFFIXES),
                    height=120,
                    elem_id="launch-upload",
                )
                upload_msg = gr.Markdown(elem_id="launch-upload-msg")
            sections: dict[str, gr.Accordion] = {}
            for section, title in SECTION_TITLES.items():
                with (
                    gr.Accordion(
                        title,
                        open=section in ("method", "training"),
                        elem_id=f"launch-section-{section}",
                    ) as sections[section],
                    gr.Row(elem_classes="pp-form-grid"),
                ):
                    fields += [forms.component(s) for s in SPECS if s.section == section]
        with gr.Column(scale=2, elem_classes="pp-side"):
            gr.Markdown("### Storage estimate")
            estimate_md = gr.Markdown(
                storage("minilm-l6", ["rotten_tomatoes"], *[s.default for s in SPECS]),
                elem_id="launch-estimate",
            )
            gr.Markdown("### Launch")
            name = gr.Textbox(label="Job name", placeholder="optional, e.g. 'sentiment v2'")
            queue = gr.Textbox(
                label="Queue",
                placeholder=get_settings().default_queue,
                info="workers listen on queues; blank = the default",
            )
            submit_btn = gr.Button(
                "Launch job", variant="primary", size="lg", elem_id="launch-submit"
            )
            status = gr.Markdown(elem_id="launch-status")
            with gr.Accordion(
                "Sweep: one job per combination of values", open=False, elem_id="launch-sweep"
            ):
                gr.Markdown(
                    "The options above are the base; each value listed here replaces "
                    "its field in one job (two fields: every pair). At most 64 jobs."
                )
                sweep_fields, sweep_values = [], []
                for i, (field, text) in enumerate(
                    (("propetl.keep", "0.05, 0.1, 0.3, 0.5"), (None, ""))
                ):
                    with gr.Row():
                        sweep_fields.append(
                            gr.Dropdown(
                                sweep_field_choices(),
                                value=field,
                                label=f"Field {i + 1}",
                                elem_id=f"sweep-field-{i + 1}",
                                scale=1,
                            )
                        )
                        sweep_values.append(
                            gr.Textbox(
                                value=text,
                                label="Values (comma-separated)",
                                placeholder="e.g. adapter, lora",
                                elem_id=f"sweep-values-{i + 1}",
                                scale=1,
                            )
                        )
                sweep_btn = gr.Button("Launch sweep", elem_id="launch-sweep-submit")
                sweep_status = gr.Markdown(elem_id="launch-sweep-status")
            with gr.Accordion("Presets", open=False):
                preset = gr.Dropdown(presets.list_presets(), label="Preset", value=None)
                load_btn = gr.Button("Load preset", size="sm")
                preset_name = gr.Textbox(label="Save current options as")
                save_btn = gr.Button("Save preset", size="sm")
                preset_msg = gr.Markdown()

    ui = LaunchUI(
        backbone,
        tasks,
        name,
        queue,
        fields,
        status,
        submit_btn,
        SweepForm(sweep_fields, sweep_values, sweep_status, sweep_btn),
        mode,
        base,
    )
    private: dict[str, Any] = {"api_visibility": "private"}
    tasks.change(tasks_md, tasks, tasks_table, **private).then(
        preview_choice, tasks, preview_task, **private
    )
    preview_task.change(lambda t: preview(t, 0), preview_task, [rows, page_info, page], **private)
    prev_btn.click(
        lambda t, p: preview(t, p - 1), [preview_task, page], [rows, page_info, page], **private
    )
    next_btn.click(
        lambda t, p: preview(t, p + 1), [preview_task, page], [rows, page_info, page], **private
    )
    upload_file.upload(upload, [upload_file, tasks], [upload_msg, tasks], **private)
    # the page is drawn with the catalog only: the user's own uploads are listed for them
    tasks.focus(fresh_task_choices, None, tasks, **private)
    method = [f for f, s in zip(fields, SPECS, strict=True) if s.key.startswith("propetl.")]
    for component in (backbone, tasks):
        component.change(generation_open, [backbone, tasks], sections["generation"], **private)
    for component in (backbone, tasks, *method, mode, base):
        component.change(
            estimate_any, [mode, base, backbone, tasks, *fields], estimate_md, **private
        )
    keys = [s.key for s in SPECS]
    mode.change(
        lambda m: grow.on_mode(m, len(keys), keys),
        mode,
        [base, base_info, backbone, *fields],
        **private,
    )
    base.change(lambda u: grow.on_base(u, SPECS), base, [backbone, base_info, *fields], **private)
    petl_field = fields[[s.key for s in SPECS].index("propetl.petl")]
    petl_field.change(method_fields, petl_field, fields, **private)
    max_length = fields[[s.key for s in SPECS].index("max_length")]
    for component in (preview_task, backbone, max_length):
        component.change(cards.card_md, [preview_task, backbone, max_length], card, **private)
    preview_box.expand(cards.card_md, [preview_task, backbone, max_length], card, **private)
    for component in (tasks, backbone, max_length):
        component.change(
            cards.truncation_warning, [tasks, backbone, max_length], cut_warning, **private
        )
    load_btn.click(apply_preset, preset, ui.form, **private)
    save_btn.click(
        save_preset, [preset_name, backbone, tasks, *fields], [preset_msg, preset], **private
    )
    return ui


def wire_submit(ctx: Ctx, ui: LaunchUI, tabs: gr.Tabs, open_job: gr.components.Component) -> None:
    """Submit queues the job, then switches to the Jobs tab with it open."""

    def handler(
        request: gr.Request,
        name: str,
        queue: str,
        mode: str,
        base: str | None,
        backbone: str,
        tasks: list[str],
        *values: Any,
    ) -> Any:
        if mode == grow.ADD:
            message, job_id = grow.submit_add(
                ctx, request, name, queue, base, tasks, forms.to_config(SPECS, list(values))
            )
            if job_id is None:
                return message, gr.update(), gr.update()
            return (
                message + " Opening it in the Jobs tab…",
                gr.Tabs(selected="jobs"),
                gr.update(choices=job_choices(), value=job_id),
            )
        return submit(ctx, request, name, queue, backbone, tasks, list(values))

    ui.submit.click(
        handler,
        [ui.name, ui.queue, ui.mode, ui.base, ui.backbone, ui.tasks, *ui.fields],
        [ui.status, tabs, open_job],
        api_visibility="private",
    )


def wire_sweep(ctx: Ctx, ui: LaunchUI, tabs: gr.Tabs, open_sweep: gr.components.Component) -> None:
    """Launch sweep queues every combination, then switches to the Sweeps tab with it open."""
    form = ui.sweep
    assert form is not None

    def handler(
        request: gr.Request,
        name: str,
        queue: str,
        backbone: str,
        tasks: list[str],
        field1: str | None,
        values1: str,
        field2: str | None,
        values2: str,
        *values: Any,
    ) -> Any:
        return submit_sweep(
            ctx,
            request,
            name,
            queue,
            backbone,
            tasks,
            list(values),
            [(field1, values1), (field2, values2)],
        )

    form.submit.click(
        handler,
        [
            ui.name,
            ui.queue,
            ui.backbone,
            ui.tasks,
            form.fields[0],
            form.values[0],
            form.fields[1],
            form.values[1],
            *ui.fields,
        ],
        [form.status, tabs, open_sweep],
        api_visibility="private",
    )

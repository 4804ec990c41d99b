"""Launch's choice between training a new prototype and adding tasks onto one: the method
fields then come from the prototype (shown read-only), the estimate counts only the added
bytes, and the job names the prototype (`base_prototype`)."""

from __future__ import annotations

from typing import Any

import gradio as gr
from pydantic import ValidationError

from ..specs import JobSpec, describe_errors
from . import forms
from .common import Ctx, fmt_bytes, problems_md, prototype_choices, registry
from .guard import current_access

NEW = "new prototype"
ADD = "add tasks to a prototype"
MODES = (NEW, ADD)


def is_method(key: str) -> bool:
    """A form field that the prototype fixes when adding tasks onto it."""
    return key.startswith("propetl.")


def base_info(uid: str | None) -> str:
    """The chosen prototype's tasks (in order, with the job that trained each) and what one
    more task costs on disk."""
    if not uid:
        return "*Choose the prototype to add tasks to.*"
    proto = registry().get_prototype(uid)
    rows = [
        f"{m.position + 1}. **{m.task.name}** (job #{m.job_id}, masks {fmt_bytes(m.mask_bytes)})"
        if m.job_id
        else f"{m.position + 1}. **{m.task.name}** (masks {fmt_bytes(m.mask_bytes)})"
        for m in proto.mask_sets
    ]
    return (
        f"Adding to **{proto.uid[:8]}** · {proto.petl_kind} ({proto.sharing}) on "
        f"**{proto.backbone.name}**: the backbone and method fields below come from it "
        "(read-only); the prototype and its tasks stay frozen, only the new tasks' masks "
        "and heads train.\n\n" + "\n".join(rows)
    )


def added_estimate(uid: str | None, tasks: list[str] | None) -> str:
    """Only what the new tasks add: each one a mask file like the prototype's tasks' (1 bit
    per entry) plus its head."""
    if not uid:
        return "*Choose a prototype.*"
    proto = registry().get_prototype(uid)
    sizes = [m.mask_bytes for m in proto.mask_sets if m.mask_bytes]
    per_task = max(sizes) if sizes else 0
    n = len(tasks or [])
    bits = int((proto.storage or {}).get("mask_bits_per_task", 0))
    return (
        f"**Added storage only**: {n} new task{'s' * (n != 1)} × about "
        f"{fmt_bytes(per_task)} of masks ({bits:,} bits each) + a small head each = about "
        f"**{fmt_bytes(n * per_task)}** of masks. The shared prototype is already stored "
        "and is not written again."
    )


def on_mode(mode: str, fields_count: int, keys: list[str]) -> list[Any]:
    """Show the prototype picker in add mode; method fields editable again in new mode."""
    adding = mode == ADD
    out: list[Any] = [
        gr.update(visible=True, choices=prototype_choices())
        if adding
        else gr.update(visible=False),
        gr.update(visible=adding),
        gr.update(interactive=not adding),
    ]
    out += [gr.update(interactive=not adding) if is_method(k) else gr.skip() for k in keys]
    return out


def on_base(uid: str | None, specs: list[Any]) -> list[Any]:
    """Fill the backbone and the method fields from the prototype (read-only)."""
    if not uid:
        return [gr.update(), gr.update(value=base_info(None))] + [gr.skip() for _ in specs]
    proto = registry().get_prototype(uid)
    values = forms.from_config(specs, {"propetl": dict(proto.config)})
    out: list[Any] = [
        gr.update(value=proto.backbone.name, interactive=False),
        gr.update(value=base_info(uid)),
    ]
    out += [
        gr.update(value=v, interactive=False) if is_method(s.key) else gr.skip()
        for s, v in zip(specs, values, strict=True)
    ]
    return out


def submit_add(
    ctx: Ctx,
    request: gr.Request | None,
    name: str,
    queue: str,
    uid: str | None,
    tasks: list[str],
    config: dict[str, Any],
) -> tuple[str, int | None]:
    """Queue a job adding `tasks` onto prototype `uid`; the training options only (method
    fields come from the prototype). Returns (message, job id or None)."""
    if not uid:
        return "✗ Choose the prototype to add tasks to.", None
    owner = ctx.user(request)
    training = {k: v for k, v in config.items() if k not in ("backbone", "propetl")}
    data = {
        "name": name or "",
        "queue": queue or None,
        "owner": owner,
        "config": {**training, "tasks": list(tasks or [])},
    }
    try:
        # the caller's own prototype (another's reads as missing); the registry trusts it
        data["base_prototype"] = current_access().prototype(uid).uid
        spec = JobSpec.model_validate(data, context={"owner": owner})
        job_id = registry().submit_job(spec)
    except ValidationError as err:
        return problems_md("✗ Fix these before launching:", describe_errors(err).splitlines()), None
    except Exception as err:  # no such prototype, conflicts with it, or the broker is down
        return f"✗ could not queue the job: {err}", None
    return f"✓ Job **#{job_id}** queued: it adds {', '.join(tasks)} to {uid[:8]}.", job_id


def launch_onto(uid: str | None) -> list[Any]:
    """Models' "Add a task": the Launch tab in add mode with prototype `uid` chosen."""
    if not uid:
        return [gr.update(), gr.update(), gr.update()]
    return [
        ADD,
        gr.update(choices=prototype_choices(), value=uid, visible=True),
        gr.Tabs(selected="launch"),
    ]


def build() -> tuple[gr.Radio, gr.Dropdown, gr.Markdown]:
    """The choice, drawn at the top of the Launch form."""
    mode = gr.Radio(
        list(MODES),
        value=NEW,
        label="Train",
        elem_id="launch-mode",
        info="a new prototype, or more tasks over a trained one (a few KB each)",
    )
    base = gr.Dropdown(
        [], value=None, label="Prototype to add tasks to", visible=False, elem_id="launch-base"
    )
    info = gr.Markdown(visible=False, elem_id="launch-base-info")
    return mode, base, info

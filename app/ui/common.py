"""Helpers every tab shares: the registry, the caller, choice lists and small HTML pieces."""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

import gradio as gr

from ..auth import Auth
from ..registry import Registry, get_registry

STATUS_ICON = {"queued": "…", "running": "▶", "succeeded": "✓", "failed": "✗", "cancelled": "■"}


@dataclass
class Ctx:
    """What the tabs need from the server: the login rules."""

    auth: Auth

    def user(self, request: gr.Request | None) -> str:
        """Owner name for work done in this browser session."""
        return self.auth.owner_for(getattr(request, "username", None))

    def username(self, request: gr.Request | None) -> str | None:
        return getattr(request, "username", None)


@dataclass
class Refresh:
    """How a tab redraws what depends on the registry: `fn(*inputs) -> outputs`, run when
    the page loads and when the tab is opened."""

    fn: Any
    inputs: list[Any]
    outputs: list[Any]


def picked_prototype(current: str | None) -> Any:
    """The prototype picker re-listed; the current choice kept, else the newest prototype."""
    choices = prototype_choices()
    values = [uid for _, uid in choices]
    value = current if current in values else (values[0] if values else None)
    return gr.update(choices=choices, value=value)


def registry() -> Registry:
    """The registry as the current event's user may see it (`app.ui.guard`): another's
    work is "not found", lists hold only the user's."""
    from .guard import ScopedRegistry, current_access

    return ScopedRegistry(current_access(get_registry()))  # type: ignore[return-value]


def engine() -> Any:
    """The playground engine for the current event's user (prototypes checked first)."""
    from ..playground import get_engine
    from .guard import ScopedEngine, current_access

    return ScopedEngine(current_access(get_registry()), get_engine())


def job_label(job: Any) -> str:
    return f"#{job.id} · {job.name}"


def job_choices(limit: int = 100) -> list[tuple[str, int]]:
    return [(job_label(j), j.id) for j in registry().list_jobs(limit=limit)]


def prototype_choices() -> list[tuple[str, str]]:
    out = []
    for p in registry().list_prototypes():
        tasks = ", ".join(m.task.name for m in p.mask_sets) or "no tasks"
        out.append((f"{p.uid[:8]} · {p.petl_kind} on {p.backbone.name} · {tasks}", p.uid))
    return out


def badge(status: str) -> str:
    return (
        f'<span class="pp-badge pp-{html.escape(status)}">'
        f"{STATUS_ICON.get(status, '')} {html.escape(status)}</span>"
    )


def progress_bar(fraction: float, text: str) -> str:
    pct = max(0.0, min(1.0, fraction)) * 100
    return (
        f'<div class="pp-progress"><div class="pp-progress-fill" style="width:{pct:.1f}%">'
        f"</div><span>{html.escape(text)}</span></div>"
    )


def empty_state(text: str) -> str:
    return f'<div class="pp-empty">{text}</div>'


def problems_md(title: str, problems: list[str]) -> str:
    return f"**{title}**\n\n" + "\n".join(f"- {p}" for p in problems)


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"

"""Playground tab: one prototype loaded once; a task (or all tasks) answered by mask swap.

A generative prototype's answer is streamed token by token, with the token rate."""

from __future__ import annotations

import html
from collections.abc import Iterator
from typing import Any

import gradio as gr

from ..playground import ALL_TASKS, PlaygroundError, Prediction
from ..registry import NotFoundError
from . import labelling
from .common import Refresh, empty_state, engine, picked_prototype

NO_MODELS = empty_state("No trained prototypes yet — launch a job first, then try it here.")


def task_choices(uid: str | None) -> Any:
    if not uid:
        return gr.update(choices=[], value=None)
    tasks = engine().tasks_of(uid)
    return gr.update(choices=[*tasks, ALL_TASKS], value=tasks[0] if tasks else None)


def results_html(prediction: Prediction) -> str:
    """One card per task: its label and a bar per class."""
    cards = []
    for row in prediction.results:
        if "text" in row:
            body = f"<div class='pp-generated'>{html.escape(row['text'])}</div>"
        elif row.get("label") is None:
            body = f"<div class='pp-value'>value {row.get('value', 0):.3f}</div>"
        else:
            bars = "".join(
                f"<div class='pp-bar-row'><span>{html.escape(str(name))}</span>"
                f"<div class='pp-bar'><div style='width:{100 * p:.1f}%'></div></div>"
                f"<b>{100 * p:.1f}%</b></div>"
                for name, p in sorted(row["scores"].items(), key=lambda kv: -kv[1])
            )
            body = f"<div class='pp-label'>{html.escape(str(row['label']))}</div>{bars}"
        cards.append(
            f"<div class='pp-result'><div class='pp-task'>{html.escape(row['task'])}"
            f"</div>{body}</div>"
        )
    return f"<div class='pp-results'>{''.join(cards)}</div>"


def timing_md(prediction: Prediction) -> str:
    if prediction.mode == "mixed":
        text = (
            f"One mixed batch over {len(prediction.results)} tasks: "
            f"**{prediction.inference_ms:.1f} ms** inference (no mask swap)"
        )
    else:
        text = (
            f"Mask swap **{prediction.swap_ms:.3f} ms** · inference "
            f"**{prediction.inference_ms:.1f} ms**"
        )
    if prediction.batch_requests > 1:  # concurrent requests answered in the same forward
        text += (
            f" · batched with {prediction.batch_requests - 1} other request(s) "
            f"({prediction.batch_texts} texts), waited {prediction.queue_ms:.1f} ms"
        )
    if prediction.load_ms:
        text += f" · first load of the prototype {prediction.load_ms:.0f} ms (cached now)"
    return text


def generated_html(task: str, text: str, done: bool) -> str:
    cursor = "" if done else "<span class='pp-cursor'>▍</span>"
    return (
        f"<div class='pp-results'><div class='pp-result'><div class='pp-task'>"
        f"{html.escape(task)}</div><div class='pp-generated' id='play-generated'>"
        f"{html.escape(text)}{cursor}</div></div></div>"
    )


def error_html(err: Exception) -> str:
    return f"<p class='pp-error'>✗ {html.escape(str(err))}</p>"


def predict(uid: str | None, task: str | None, text: str, pair: str) -> tuple[str, str]:
    if not uid:
        return NO_MODELS, ""
    if not task:
        return "Choose a task.", ""
    try:
        prediction = engine().predict(uid, task, text, pair or None)
    except (PlaygroundError, NotFoundError, ValueError) as err:
        return error_html(err), ""
    return results_html(prediction), timing_md(prediction)


def respond(uid: str | None, task: str | None, text: str, pair: str) -> Iterator[tuple[str, str]]:
    """`predict`, except that a generative prototype streams its text as it comes."""
    try:
        streaming = bool(uid and task and task != ALL_TASKS and engine().is_generative(uid))
    except (PlaygroundError, NotFoundError) as err:
        yield error_html(err), ""
        return
    if not streaming:
        yield predict(uid, task, text, pair)
        return
    assert uid is not None and task is not None
    try:
        for chunk in engine().stream(uid, task, text):
            state = "done" if chunk.done else "generating"
            yield (
                generated_html(task, chunk.text, chunk.done),
                f"{state} · **{chunk.tokens} tokens** · **{chunk.tokens_per_second:.1f} tokens/s**",
            )
    except (PlaygroundError, NotFoundError, ValueError) as err:
        yield error_html(err), ""


def fresh(current: str | None) -> tuple[Any, Any]:
    """The prototype picker re-listed, and the answer area's empty state to match it."""
    picker = picked_prototype(current)
    if not picker["choices"]:
        return picker, NO_MODELS
    if picker["value"] != current:
        return picker, empty_state("Answers appear here.")
    return picker, gr.skip()


def build() -> tuple[gr.Dropdown, Refresh]:
    # drawn empty: the choices are filled for each page load (`Refresh`)
    with gr.Row():
        proto = gr.Dropdown([], label="Prototype", scale=4, elem_id="play-proto", value=None)
        refresh = gr.Button("↻ Refresh", size="sm", scale=1)
        task = gr.Dropdown(
            [],
            label="Task",
            scale=2,
            elem_id="play-task",
            info=f"“{ALL_TASKS}” answers every task in one mixed batch",
        )
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            text = gr.Textbox(
                label="Text",
                lines=3,
                elem_id="play-text",
                placeholder="Type a sentence, e.g. 'a warm, funny and moving film'",
            )
            pair = gr.Textbox(
                label="Second text (only for pair tasks)", lines=1, elem_id="play-pair"
            )
            go = gr.Button("Predict", variant="primary", elem_id="play-go")
        with gr.Column(scale=4):
            out = gr.HTML(empty_state("Answers appear here."), elem_id="play-out")
            timing = gr.Markdown(elem_id="play-timing")
    labelling.build(proto, task)
    private: dict[str, Any] = {"api_visibility": "private"}
    proto.change(task_choices, proto, task, api_visibility="private")
    go.click(respond, [proto, task, text, pair], [out, timing], api_visibility="private")
    text.submit(respond, [proto, task, text, pair], [out, timing], **private)
    task.input(respond, [proto, task, text, pair], [out, timing], **private)
    refresh.click(fresh, proto, [proto, out], **private)
    return proto, Refresh(fresh, [proto], [proto, out])

"""The run page of a finished job, as HTML: time, per-task test metrics, the checkpoint
choice, and per classification task its confusion matrix, per-class scores and the worst
misclassified test examples (data from `app.runs.run_view`)."""

from __future__ import annotations

import html
from typing import Any

METRIC_ORDER = ("accuracy", "macro_f1", "f1", "matthews", "pearson", "spearman", "rougeL", "bleu")


def _num(value: Any, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _seconds(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.1f} s" if value < 120 else f"{value / 60:.1f} min"


def _metrics(test: dict[str, float]) -> str:
    shown = [k for k in METRIC_ORDER if k in test] or [
        k for k in test if k not in ("main", "combined")
    ]
    return ", ".join(f"{k} {_num(test[k])}" for k in shown)


def _task_rows(view: dict[str, Any]) -> str:
    rows = []
    for t in view["tasks"]:
        major = (t.get("majority") or {}).get("test")
        lost = t.get("dev_lost_at_kept_step")
        note = (
            ""
            if not lost or lost < 1e-9
            else f" <span class='pp-warn'>({_num(lost)} below its best)</span>"
        )
        rows.append(
            f"<tr><td><b>{html.escape(t['task'])}</b></td><td>{_metrics(t['test'])}</td>"
            f"<td>{_num(major['accuracy']) + ' (' + html.escape(major['label']) + ')' if major else '–'}</td>"
            f"<td>{_num(t['dev_at_kept_step'])}{note}</td>"
            f"<td>{_num(t['best_dev'])} at step {t['best_dev_step'] if t['best_dev_step'] is not None else '–'}</td></tr>"
        )
    return (
        "<table class='pp-run-table'><tr><th>task</th><th>Test metrics</th>"
        "<th>majority class (test accuracy)</th><th>dev at kept step</th>"
        "<th>its best dev</th></tr>" + "".join(rows) + "</table>"
    )


def _confusion(report: dict[str, Any]) -> str:
    labels = [html.escape(str(x)) for x in report["labels"]]
    head = "<tr><th>gold \\ predicted</th>" + "".join(f"<th>{x}</th>" for x in labels) + "</tr>"
    biggest = max((max(r) for r in report["confusion"]), default=1) or 1
    body = []
    for name, row in zip(labels, report["confusion"], strict=True):
        cells = "".join(
            f"<td style='background:rgba(79,70,229,{0.08 + 0.6 * n / biggest:.2f})'>{n}</td>"
            for n in row
        )
        body.append(f"<tr><th>{name}</th>{cells}</tr>")
    return f"<table class='pp-run-table pp-confusion'>{head}{''.join(body)}</table>"


def _per_class(report: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(str(c['label']))}</td><td>{_num(c['precision'])}</td>"
        f"<td>{_num(c['recall'])}</td><td>{_num(c['f1'])}</td>"
        f"<td>{c['support']}</td></tr>"
        for c in report["per_class"]
    )
    return (
        "<table class='pp-run-table'><tr><th>class</th><th>precision</th><th>recall</th>"
        f"<th>F1</th><th>support</th></tr>{rows}</table>"
    )


def _worst(report: dict[str, Any]) -> str:
    if not report["worst"]:
        return "<p>No test example is misclassified.</p>"
    items = []
    for row in report["worst"]:
        text = row.get("text", "")
        if row.get("text_pair"):
            text += " ‖ " + row["text_pair"]
        probs = ", ".join(
            f"{html.escape(str(k))} {v:.2f}"
            for k, v in sorted(row.get("probs", {}).items(), key=lambda kv: -kv[1])
        )
        items.append(
            f"<li><q>{html.escape(text[:240])}</q><br><small>gold "
            f"<b>{html.escape(str(row['gold']))}</b>, predicted "
            f"<b>{html.escape(str(row['predicted']))}</b> · {probs}</small></li>"
        )
    return f"<ol class='pp-worst'>{''.join(items)}</ol>"


def run_html(view: dict[str, Any]) -> str:
    """The whole run page (empty until the job has finished)."""
    if view["status"] != "succeeded":
        return ""
    kept = view["kept_step"]
    parts = [
        "<div class='pp-run'><h4>Run</h4>",
        f"<p>wall time <b>{_seconds(view['wall_seconds'])}</b> · training "
        f"{_seconds(view['train_seconds'])} for {view['steps']} steps · step time "
        f"<b>{_num(view['step_seconds'])} s</b> · <b>{_num(view['samples_per_second'], 1)} "
        f"samples/s</b></p>",
        f"<p>Checkpoint: kept step <b>{kept if kept is not None else '–'}</b>, "
        f"{html.escape(view['kept_because'] or 'the last step')}; the table shows each task's "
        "own best dev step, so a task that peaked elsewhere is visible.</p>",
        "<h4>Test metrics per task</h4>",
        _task_rows(view),
    ]
    for t in view["tasks"]:
        report = t.get("classification")
        if not report:
            continue
        parts += [
            f"<h4>{html.escape(t['task'])}: Confusion matrix (test, {report['examples']} "
            "examples)</h4>",
            "<div class='pp-run-pair'>",
            _confusion(report),
            _per_class(report),
            "</div>",
            f"<h4>{html.escape(t['task'])}: Worst misclassified test examples</h4>",
            _worst(report),
        ]
    return "".join(parts) + "</div>"

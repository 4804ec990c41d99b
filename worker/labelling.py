"""The body of a labelling job (batch prediction): stream an uploaded file through a
prototype and write the labelled CSV into the artifacts, reporting progress as it goes."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from app.access import Access
from app.auth import get_auth
from app.labels import input_path, result_path
from app.models import Prototype
from app.registry import Claim, Registry

from .reporting import Heartbeat

log = logging.getLogger(__name__)


def _owned_prototype(registry: Registry, uid: str, owner: str) -> Prototype:
    """Prototype `uid` when the job's owner may use it (`app.access`, the label route's own
    check made again: a label job that reached the queue some other way labels nothing of
    another user's); otherwise `NotFoundError`, as for a missing prototype."""
    return Access.of(get_auth(registry.settings), owner, registry).prototype(uid)


def _predictor(registry: Registry, uid: str, owner: str):
    """The prototype loaded for inference, with a bounded cache of materialised tasks."""
    from propetl.backbones import load_tokenizer
    from propetl.inference import Predictor
    from propetl.model import ProPETLModel

    proto = _owned_prototype(registry, uid, owner)
    tasks = [m.task.name for m in proto.mask_sets if Path(m.artifact_path).is_dir()]
    if not tasks:
        raise RuntimeError(f"prototype {uid[:8]} has no task masks left")
    model = ProPETLModel.from_pretrained(proto.artifact_path, tasks=tasks)
    if model.family.generative:
        raise RuntimeError(
            f"prototype {uid[:8]} generates text; file labelling needs a classification prototype"
        )
    for bank in model.banks.values():
        bank.cache_limit = registry.settings.serve_task_cache
    max_length = int((proto.train_config or {}).get("max_length") or 128)
    return Predictor(model, load_tokenizer(proto.backbone.name), max_length=max_length)


def run_label_job(registry: Registry, job_id: int, claim: Claim) -> str:
    """Label the job's file; 'succeeded', 'failed' or 'cancelled' (a rerun starts over)."""
    from propetl.labelling import count_rows, label_file

    spec = claim.spec.label
    assert spec is not None
    settings = registry.settings
    attempt = claim.attempt
    with Heartbeat(registry, job_id, attempt, settings.heartbeat_interval) as beat:
        try:
            source = input_path(spec, settings)
            total = count_rows(source)
            registry.report_progress(job_id, attempt, step=0, total_steps=total, phase="label")
            predictor = _predictor(registry, spec.prototype, claim.spec.owner)
            last = [0.0]

            def progress(rows: int, rate: float) -> None:
                now = time.monotonic()
                if now - last[0] < settings.progress_interval and rows < total:
                    return
                last[0] = now
                eta = (total - rows) / rate if rate > 0 else None
                registry.report_progress(
                    job_id,
                    attempt,
                    step=rows,
                    total_steps=total,
                    phase="label",
                    eta_seconds=eta,
                    samples_per_second=rate,
                )

            summary = label_file(
                predictor,
                source,
                result_path(job_id, settings),
                task=spec.task,
                text_column=spec.text_column,
                pair_column=spec.pair_column,
                task_column=spec.task_column,
                batch_size=settings.serve_max_batch,
                on_progress=progress,
                should_stop=beat.should_stop,
            )
        except Exception as err:
            log.exception("labelling job %s failed", job_id)
            registry.fail_job(job_id, f"{err.__class__.__name__}: {err}", attempt=attempt)
            return "failed"
        if beat.lost.is_set():
            return "lost"
        if summary.stopped:
            registry.mark_cancelled(job_id, attempt, step=summary.rows)
            return "cancelled"
        registry.finish_without_prototype(job_id, attempt, step=summary.rows)
        log.info(
            "labelling job %s: %d rows (%d errors) in %.1fs",
            job_id,
            summary.rows,
            summary.errors,
            summary.seconds,
        )
        return "succeeded"

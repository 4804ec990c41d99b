"""The Playground's handler goes through the same batcher as the REST API: concurrent
requests of different tasks share forwards and each page gets its own task's answer."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import pytest

from bench.serve_load import register_many_task_prototype, task_names


@pytest.fixture
def served(tmp_path, monkeypatch):
    from app import playground
    from app.serving import Serving
    from tests.dashboard_stack import reset_caches

    for key in ("DATABASE_URL", "BROKER_URL", "ARTIFACTS_DIR", "RUNS_DIR", "AUTH_ENABLED"):
        monkeypatch.delenv(f"PROPETL_{key}", raising=False)
    monkeypatch.setenv("PROPETL_DATA_DIR", str(tmp_path / "data"))
    reset_caches()
    from app.registry import get_registry

    uid = register_many_task_prototype(get_registry(), "tiny-bert", 6)
    engine = playground.PlaygroundEngine(serving=Serving(max_batch=32, max_wait_ms=100))
    monkeypatch.setattr(playground, "_engine", engine)
    yield uid, engine
    reset_caches()


def test_concurrent_playground_requests_are_batched_and_answered_per_task(served):
    from app.ui import playground as page

    uid, engine = served
    tasks = task_names(6)
    alone = {t: engine.predict(uid, t, f"text for {t}").results[0] for t in tasks}
    calls = [tasks[i % 6] for i in range(18)]
    with ThreadPoolExecutor(18) as pool:
        pages = list(pool.map(lambda t: page.predict(uid, t, f"text for {t}", ""), calls))
    batched = 0
    for task, (cards, timing) in zip(calls, pages, strict=True):
        label = alone[task]["label"]
        assert f">{task}<" in cards and f">{label}<" in cards, cards
        assert all(other not in cards for other in tasks if other != task)
        batched += bool(re.search(r"batched with \d+ other request", timing))
    assert batched >= 9, [timing for _, timing in pages]

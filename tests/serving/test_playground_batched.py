"""The Playground's handler goes through the same batcher as the REST API: concurrent
requests of different tasks share forwards and each page gets its own task's answer."""

from __future__ import annotations

import os
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


def _engine(recheck_s: float):
    from app.playground import PlaygroundEngine
    from app.serving import Serving

    return PlaygroundEngine(serving=Serving(max_batch=8, max_wait_ms=1), recheck_s=recheck_s)


def test_the_registry_is_read_once_per_recheck_interval_not_per_request(served, monkeypatch):
    from app.registry import Registry

    uid, _ = served
    reads = {"owner": 0, "tasks": 0}
    for name, key in (("prototype_owner", "owner"), ("served_tasks", "tasks")):
        original = getattr(Registry, name)

        def counted(self, *args, _original=original, _key=key, **kwargs):
            reads[_key] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(Registry, name, counted)
    engine = _engine(recheck_s=60)
    for task in task_names(6) * 3:
        assert engine.prototype_owner(uid)[0]
        assert engine.predict(uid, task, "a text").results[0]["task"] == task
    assert reads == {"owner": 1, "tasks": 1}
    fresh = _engine(recheck_s=0)
    for task in task_names(6):
        fresh.prototype_owner(uid)
        fresh.predict(uid, task, "a text")
    assert reads == {"owner": 7, "tasks": 7}


def test_a_task_missing_from_the_list_read_last_is_looked_up_again_at_once(served):
    from app.registry import get_registry

    uid, _ = served
    engine = _engine(recheck_s=60)
    [folder] = [
        m.artifact_path
        for m in get_registry().get_prototype(uid).mask_sets
        if m.task.name == "t0005"
    ]
    hidden = folder + ".away"
    os.rename(folder, hidden)  # as if its worker had not placed it yet
    assert engine.predict(uid, "t0000", "a text").tasks == task_names(5)
    os.rename(hidden, folder)
    # named by a request: read again although the list is younger than recheck_s
    assert engine.predict(uid, "t0005", "a text").results[0]["task"] == "t0005"


def test_without_recheck_interval_a_task_deleted_elsewhere_is_refused_at_once(served):
    from app.playground import PlaygroundError
    from app.registry import get_registry

    uid, _ = served
    engine = _engine(recheck_s=0)
    assert engine.predict(uid, "t0003", "a text").results[0]["task"] == "t0003"
    [mask_set] = [m for m in get_registry().get_prototype(uid).mask_sets if m.task.name == "t0003"]
    get_registry().delete_mask_set(mask_set.id)  # another process, not this engine
    with pytest.raises(PlaygroundError, match="unknown task 't0003'"):
        engine.predict(uid, "t0003", "a text")

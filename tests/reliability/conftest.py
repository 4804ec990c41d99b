"""Fault injection on real processes: private Redis / PostgreSQL servers that tests stop and
restart, worker processes killed at random points, a full or read-only artifacts folder."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import services
from tests.worker.conftest import Stack, _stack, long_job, tiny_job, wait_for

__all__ = ["Stack", "assert_exactly_once", "long_job", "set_env", "tiny_job", "wait_for"]


def set_env(stack: Stack, monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    """Change `PROPETL_*` settings for this test's process and the workers it starts next."""
    from tests.dashboard_stack import reset_caches

    for key, value in values.items():
        stack.env[key] = value
        monkeypatch.setenv(key, value)
    reset_caches()


def logged_points(run_dir: Path) -> set[tuple[int, str, str, str]]:
    """(step, task, split, name) of every metric the engine logged in metrics.jsonl."""
    keys = set()
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        event = json.loads(line)
        step, phase = event["step"], event["phase"]
        if phase == "train":
            if event["loss"] is not None:
                keys.add((step, "", "train", "loss"))
            keys.update((step, "", "train", name) for name in event["learning_rates"] or {})
        split = {"eval": "dev", "test": "test"}.get(phase)
        for task, values in (event["metrics"] or {}).items() if split else ():
            keys.update((step, task, split, name) for name in values)
    return keys


def assert_exactly_once(
    stack: Stack, job_id: int, attempts: int | None = None, strays: bool = False
) -> Any:
    """The job succeeded once: one registered prototype whose files exist, no stray
    prototype folder (unless `strays`: a kill between publishing and registering leaves
    one that nothing points at), and every metric point the engine logged is in the
    registry exactly once."""
    registry = stack.registry
    job = registry.get_job(job_id)
    assert job.status == "succeeded", f"{job.status}: {job.error}\n{stack.tail()}"
    if attempts is not None:
        assert job.attempts == attempts, (job.attempts, job.error)
    protos = [p for p in registry.list_prototypes() if p.job_id == job_id]
    assert len(protos) == 1, protos
    folder = Path(protos[0].artifact_path)
    assert (folder / "prototype.safetensors").is_file()
    published = sorted(p.name for p in folder.parent.iterdir() if not p.name.startswith(".tmp-"))
    registered = sorted(p.uid for p in registry.list_prototypes())
    assert set(registered) <= set(published), "a registered prototype without its folder"
    assert strays or published == registered, "a model folder that no prototype row points at"
    stored = [
        (s, t, sp, n)
        for (t, sp, n), points in registry.metric_series(job_id).items()
        for s, _ in points
    ]
    assert len(stored) == len(set(stored)), "a metric point recorded twice"
    missing = logged_points(Path(job.run_dir)) - set(stored)
    assert not missing, f"{len(missing)} logged points missing, e.g. {sorted(missing)[:5]}"
    return job


@pytest.fixture
def private_redis(tmp_path) -> Iterator[services.PrivateRedis]:
    with services.PrivateRedis(tmp_path / "redis", appendonly=True) as server:
        yield server


@pytest.fixture
def private_postgres() -> Iterator[services.PrivatePostgres]:
    # a folder of its own: pytest's temporary folders are private to root
    folder = Path(tempfile.mkdtemp(prefix="propetl-pg-"))
    try:
        with services.PrivatePostgres(folder) as server:
            yield server
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def redis_broker_stack(tmp_path, monkeypatch, private_redis) -> Iterator[Stack]:
    """SQLite registry, the private Redis as broker."""
    yield from _stack(tmp_path, monkeypatch, None, private_redis.url)


@pytest.fixture
def postgres_registry_stack(tmp_path, monkeypatch, private_postgres) -> Iterator[Stack]:
    """The private PostgreSQL as registry, the embedded broker."""
    yield from _stack(tmp_path, monkeypatch, private_postgres.url, None)


@pytest.fixture
def embedded_stack(tmp_path, monkeypatch) -> Iterator[Stack]:
    yield from _stack(tmp_path, monkeypatch, None, None)

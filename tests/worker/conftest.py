"""Real worker processes over a real registry and broker, each test in its own sandbox."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests import services

REPO = Path(__file__).resolve().parents[2]

#: Fast timings so that crashes are noticed in seconds.
FAST = {
    "PROPETL_HEARTBEAT_INTERVAL": "0.5",
    "PROPETL_PROGRESS_INTERVAL": "0.5",
    "PROPETL_REAPER_TIMEOUT": "4",
    "PROPETL_REAPER_INTERVAL": "1",
}


def tiny_job(queue: str, **config: Any) -> dict[str, Any]:
    base = {
        "backbone": "tiny-bert",
        "tasks": ["rotten_tomatoes"],
        "max_examples": 16,
        "max_steps": 2,
        "batch_size": 8,
    }
    return {"queue": queue, "config": {**base, **config}}


def long_job(queue: str, steps: int) -> dict[str, Any]:
    """~70 ms a step on this machine: long enough to cancel or kill in the middle."""
    return tiny_job(
        queue,
        tasks=["bbc_news"],
        max_examples=64,
        max_steps=steps,
        batch_size=16,
        max_length=128,
        eval_every=max(steps // 2, 1),
        save_every=10,
    )


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@dataclass
class Stack:
    """Settings, a registry and worker processes for one test."""

    env: dict[str, str]
    queue: str
    tmp: Path
    workers: list[subprocess.Popen] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    @property
    def registry(self) -> Any:
        from app.registry import get_registry

        return get_registry()

    def start_worker(self, name: str | None = None, wait: bool = True) -> subprocess.Popen:
        name = name or f"w{len(self.workers)}-{uuid.uuid4().hex[:6]}"
        log = self.tmp / f"{name}.log"
        cmd = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "worker.celery_app",
            "worker",
            "--pool",
            "solo",
            "-c",
            "1",
            "-Q",
            self.queue,
            "-n",
            f"{name}@%h",
            "-l",
            "info",
            "--without-gossip",
            "--without-mingle",
        ]
        proc = subprocess.Popen(
            cmd,
            cwd=REPO,
            env=self.env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.workers.append(proc)
        self.logs.append(log)
        if wait:
            wait_for(
                lambda: " ready." in log.read_text() or proc.poll() is not None,
                60,
                f"worker {name} to start",
            )
            assert proc.poll() is None, log.read_text()[-3000:]
        return proc

    def kill(self, proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
        if proc.poll() is None:
            os.killpg(proc.pid, sig)
        proc.wait(timeout=30)

    def wait_final(self, job_id: int, timeout: float = 90) -> Any:
        return wait_for(
            lambda: (j := self.registry.get_job(job_id)).is_final and j,
            timeout,
            f"job {job_id} to finish\n{self.tail()}",
        )

    def tail(self) -> str:
        return "\n".join(f"--- {p.name}\n" + p.read_text()[-2500:] for p in self.logs if p.exists())

    def stop_all(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)


def _stack(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    database_url: str | None,
    broker_url: str | None,
) -> Iterator[Stack]:
    from app import db, queue, registry, settings

    env = {
        **os.environ,
        **FAST,
        "PROPETL_DATA_DIR": str(tmp_path / "data"),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "OMP_NUM_THREADS": "1",
        "PYTHONUNBUFFERED": "1",
    }
    for key in (
        "PROPETL_DATABASE_URL",
        "PROPETL_BROKER_URL",
        "PROPETL_ARTIFACTS_DIR",
        "PROPETL_RUNS_DIR",
        "PROPETL_RESULT_BACKEND",
    ):
        env.pop(key, None)
        monkeypatch.delenv(key, raising=False)
    if database_url:
        env["PROPETL_DATABASE_URL"] = database_url
    if broker_url:
        env["PROPETL_BROKER_URL"] = broker_url
    for key, value in env.items():
        if key.startswith("PROPETL_"):
            monkeypatch.setenv(key, value)

    def reset() -> None:
        settings.reset_settings()
        registry.reset_registry()
        queue.reset_celery()
        db.dispose_engines()

    reset()
    db.upgrade()
    stack = Stack(env=env, queue=f"q-{uuid.uuid4().hex[:8]}", tmp=tmp_path)
    try:
        yield stack
    finally:
        stack.stop_all()
        if broker_url and broker_url.startswith("redis"):
            import redis

            client = redis.Redis.from_url(broker_url)
            client.delete(stack.queue, *client.keys(f"{stack.queue}\x06*"))
        reset()


@pytest.fixture
def embedded_stack(tmp_path, monkeypatch) -> Iterator[Stack]:
    """SQLite registry and the embedded SQLite broker: one machine, no server."""
    yield from _stack(tmp_path, monkeypatch, None, None)


@pytest.fixture
def redis_stack(tmp_path, monkeypatch) -> Iterator[Stack]:
    """A throw-away PostgreSQL database and Redis: the scaled-out set-up."""
    if not (services.postgres_available() and services.redis_available()):
        pytest.skip("PostgreSQL or Redis service not reachable")
    with services.temp_postgres_db() as url:
        yield from _stack(tmp_path, monkeypatch, url, services.REDIS_URL)

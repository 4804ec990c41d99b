"""A throw-away data dir with one trained tiny prototype, shared by the API and UI tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

TINY = {
    "backbone": "tiny-bert",
    "tasks": ["rotten_tomatoes", "bbc_news"],
    "max_examples": 16,
    "max_steps": 4,
    "batch_size": 8,
    "eval_every": 2,
}
#: A tiny generative job: a decoder that writes headlines and answers sentiment as text.
TINY_GENERATIVE = {
    "backbone": "tiny-llama",
    "tasks": ["bbc_headlines", "rotten_tomatoes"],
    "max_examples": 8,
    "max_steps": 2,
    "batch_size": 4,
    "eval_every": 2,
    "max_length": 32,
    "max_target_length": 6,
}


def reset_caches() -> None:
    from app import db, queue, registry, settings

    settings.reset_settings()
    registry.reset_registry()
    queue.reset_celery()
    db.dispose_engines()


@dataclass
class Stack:
    data_dir: Path
    job_id: int
    uid: str

    @property
    def registry(self):
        from app.registry import get_registry

        return get_registry()


def make_stack(tmp: Path, config: dict | None = None) -> Iterator[Stack]:
    """Data dir under `tmp`; one job (`TINY` unless `config`) trained in this process (no
    worker needed)."""
    with pytest.MonkeyPatch.context() as mp:
        for key in (
            "DATABASE_URL",
            "BROKER_URL",
            "RESULT_BACKEND",
            "ARTIFACTS_DIR",
            "RUNS_DIR",
            "AUTH_ENABLED",
            "USERS",
            "ADMINS",
            "SECRET_KEY",
        ):
            mp.delenv(f"PROPETL_{key}", raising=False)
        mp.setenv("PROPETL_DATA_DIR", str(tmp / "data"))
        reset_caches()
        from app.registry import get_registry
        from worker.runner import execute

        registry = get_registry()
        job_id = registry.submit_job({"name": "tiny two-task", "config": config or TINY})
        assert execute(job_id, registry=registry) == "succeeded", registry.get_job(job_id).error
        proto = registry.prototype_for_job(job_id)
        assert proto is not None
        yield Stack(tmp / "data", job_id, proto.uid)
        reset_caches()


def token_for(client, user: str, password: str) -> dict[str, str]:
    reply = client.post("/api/auth/token", json={"username": user, "password": password})
    assert reply.status_code == 200, reply.text
    return {"Authorization": f"Bearer {reply.json()['token']}"}

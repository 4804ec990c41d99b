"""Fixtures: a registry on SQLite and on a throw-away PostgreSQL database, isolated settings."""

from __future__ import annotations

import pytest

from tests import services


@pytest.fixture
def isolated_settings(tmp_path, monkeypatch):
    """Settings pointing at a temporary data dir; caches reset before and after."""
    from app import db, queue, registry, settings

    for key in ("DATABASE_URL", "BROKER_URL", "RESULT_BACKEND", "ARTIFACTS_DIR", "RUNS_DIR"):
        monkeypatch.delenv(f"PROPETL_{key}", raising=False)
    monkeypatch.setenv("PROPETL_DATA_DIR", str(tmp_path / "data"))

    def reset():
        settings.reset_settings()
        registry.reset_registry()
        queue.reset_celery()
        db.dispose_engines()

    reset()
    yield settings.get_settings()
    reset()


@pytest.fixture
def pg_url():
    if not services.postgres_available():
        pytest.skip("PostgreSQL service not reachable at " + services.PG_ADMIN)
    with services.temp_postgres_db() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def db_url(request, tmp_path):
    """Each test that asks for it runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry.sqlite'}"
        from app import db

        db.dispose_engines()
    else:
        if not services.postgres_available():
            pytest.skip("PostgreSQL service not reachable")
        with services.temp_postgres_db() as url:
            yield url


@pytest.fixture
def reg(db_url, isolated_settings):
    """A migrated registry whose enqueue records (job id, queue, task id) in `reg.sent`."""
    from app import db
    from app.registry import Registry

    db.upgrade(db_url)
    sent: list[tuple[int, str, str]] = []
    registry = Registry(db_url, enqueue=lambda *a: sent.append(a))
    registry.sent = sent  # type: ignore[attr-defined]
    return registry

"""Migrations: upgrade / downgrade on SQLite and PostgreSQL, and models == migrations."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from app import db
from app.models import Base

TABLES = {"backbones", "tasks", "prototypes", "mask_sets", "jobs", "metric_points", "sweeps"}


def _tables(url: str) -> set[str]:
    return set(inspect(db.get_engine(url)).get_table_names()) - {"alembic_version"}


def test_upgrade_downgrade_upgrade(db_url):
    assert db.current_revision(db_url) is None
    db.upgrade(db_url)
    assert db.current_revision(db_url) == db.head_revision()
    assert _tables(db_url) == TABLES
    db.upgrade(db_url)  # idempotent
    db.downgrade(db_url, "base")
    assert db.current_revision(db_url) is None
    assert _tables(db_url) == set()
    db.upgrade(db_url)
    assert _tables(db_url) == TABLES


def test_models_match_migrations(db_url):
    db.upgrade(db_url)
    with db.get_engine(db_url).connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    assert diff == [], f"models and migrations differ: {diff}"


def test_metric_points_unique_key(db_url):
    db.upgrade(db_url)
    uniques = inspect(db.get_engine(db_url)).get_unique_constraints("metric_points")
    assert [u["column_names"] for u in uniques] == [["job_id", "step", "task", "split", "name"]]


def test_sweeps_migration_keeps_rows(db_url):
    """0001 -> 0002 rebuilds jobs on SQLite: its metric points and prototypes must survive."""
    db.upgrade(db_url, "0001")
    engine = db.get_engine(db_url)
    now = "2026-01-01 00:00:00"
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO jobs (id, name, owner, sweep_id, spec, status, progress, step, queue, "
                "attempts, cancel_requested, created_at) VALUES (7, 'j', 'local', 'old-label', '{}', "
                "'succeeded', 1.0, 3, 'q', 1, false, :now)"
            ),
            {"now": now},
        )
        conn.execute(
            text(
                "INSERT INTO metric_points (job_id, step, task, split, name, value, "
                "created_at) VALUES (7, 1, '', 'train', 'loss', 0.5, :now)"
            ),
            {"now": now},
        )
    db.upgrade(db_url, "0002")
    assert db.current_revision(db_url) == "0002"
    with engine.begin() as conn:
        assert conn.execute(text("SELECT sweep_id FROM jobs WHERE id = 7")).scalar_one() is None
        assert conn.execute(text("SELECT count(*) FROM metric_points")).scalar_one() == 1
        conn.execute(
            text(
                "INSERT INTO sweeps (id, name, owner, base_spec, grid, created_at) "
                "VALUES (1, 's', 'local', '{}', '{}', :now)"
            ),
            {"now": now},
        )
        conn.execute(text("UPDATE jobs SET sweep_id = 1 WHERE id = 7"))
    fks = inspect(engine).get_foreign_keys("jobs")
    assert [(f["referred_table"], f["constrained_columns"]) for f in fks] == [
        ("sweeps", ["sweep_id"])
    ]
    if engine.dialect.name == "sqlite":  # turned back on after the migration
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1
    db.downgrade(db_url, "0001")
    with engine.begin() as conn:
        assert conn.execute(text("SELECT count(*) FROM metric_points")).scalar_one() == 1
        assert conn.execute(text("SELECT sweep_id FROM jobs WHERE id = 7")).scalar_one() is None
    assert "sweeps" not in _tables(db_url)

"""Migrations: upgrade / downgrade on SQLite and PostgreSQL, and models == migrations."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from app import db
from app.models import Base

TABLES = {"backbones", "tasks", "prototypes", "mask_sets", "jobs", "metric_points"}


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

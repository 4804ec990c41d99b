"""Migration 0003 (task history) on a database made by 0002, with rows, on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import inspect, text

from app import db

NOW = "2026-01-01 00:00:00"


def _fill_0002(engine) -> None:
    """Two prototypes made by two jobs, with 3 + 1 tasks, as revision 0002 stored them."""
    with engine.begin() as conn:
        run = conn.execute
        run(
            text(
                "INSERT INTO backbones (id, name, source, description, created_at) "
                "VALUES (1, 'tiny-bert', 'tiny', '', :now)"
            ),
            {"now": NOW},
        )
        for job in (7, 8):
            run(
                text(
                    "INSERT INTO jobs (id, name, owner, spec, status, progress, step, queue, "
                    "attempts, cancel_requested, created_at) VALUES (:id, 'j', 'local', '{}', "
                    "'succeeded', 1.0, 3, 'q', 1, false, :now)"
                ),
                {"id": job, "now": NOW},
            )
        for task, name in enumerate(("a", "b", "c"), start=1):
            run(
                text(
                    "INSERT INTO tasks (id, name, source, text_columns, metrics, main_metric, "
                    "description, created_at) VALUES (:id, :name, 'file', '[]', '[]', '', '', "
                    ":now)"
                ),
                {"id": task, "name": name, "now": NOW},
            )
        for proto, job in ((1, 7), (2, 8)):
            run(
                text(
                    "INSERT INTO prototypes (id, uid, backbone_id, job_id, petl_kind, sharing, "
                    "config, train_config, prototype_params, storage, artifact_path, "
                    "created_at) VALUES (:id, :uid, 1, :job, 'adapter', 'propetl', '{}', '{}', "
                    "0, '{}', '/x', :now)"
                ),
                {"id": proto, "uid": f"u{proto}", "job": job, "now": NOW},
            )
        # mask set ids interleave between the prototypes; task order = id order per prototype
        for ms, proto, task in ((1, 1, 2), (2, 2, 1), (3, 1, 1), (4, 1, 3)):
            run(
                text(
                    "INSERT INTO mask_sets (id, prototype_id, task_id, artifact_path, "
                    "mask_bits, mask_bytes, density, dev_metrics, test_metrics, created_at) "
                    "VALUES (:id, :proto, :task, '/x', 0, 0, '[]', '{}', '{}', :now)"
                ),
                {"id": ms, "proto": proto, "task": task, "now": NOW},
            )


def test_task_history_migration_on_a_0002_database(db_url):
    db.upgrade(db_url, "0002")
    engine = db.get_engine(db_url)
    _fill_0002(engine)
    db.upgrade(db_url)
    assert db.current_revision(db_url) == db.head_revision()
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT id, prototype_id, job_id, position FROM mask_sets ORDER BY id")
        ).all()
    assert [tuple(r) for r in rows] == [(1, 1, 7, 0), (2, 2, 8, 0), (3, 1, 7, 1), (4, 1, 7, 2)]
    uniques = [u["column_names"] for u in inspect(engine).get_unique_constraints("mask_sets")]
    assert ["prototype_id", "position"] in uniques
    fks = {f["referred_table"] for f in inspect(engine).get_foreign_keys("mask_sets")}
    assert fks == {"prototypes", "tasks", "jobs"}
    # the registry reads the migrated rows in position order
    from app.registry import Registry

    reg = Registry(db_url, enqueue=lambda *a: None)
    assert [m.task.name for m in reg.get_prototype("u1").mask_sets] == ["b", "a", "c"]
    assert [m.job_id for m in reg.get_prototype("u1").mask_sets] == [7, 7, 7]
    db.downgrade(db_url, "0002")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM mask_sets")).scalar_one() == 4
    assert "position" not in {c["name"] for c in inspect(engine).get_columns("mask_sets")}

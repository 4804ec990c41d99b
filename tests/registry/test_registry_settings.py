"""Settings: everything derives from the data dir unless PROPETL_* says otherwise."""

from __future__ import annotations

from app.settings import Settings, get_settings, reset_settings


def test_defaults_under_data_dir(isolated_settings, tmp_path):
    s = isolated_settings
    data = (tmp_path / "data").resolve()
    assert s.data_dir == data
    assert s.database_url == f"sqlite:///{data / 'registry.sqlite'}"
    assert s.broker_url == f"sqla+sqlite:///{data / 'broker.sqlite'}"
    assert s.embedded_broker
    assert s.artifacts_dir == data / "artifacts"
    assert s.runs_dir == data / "runs"


def test_environment_overrides(isolated_settings, monkeypatch, tmp_path):
    monkeypatch.setenv("PROPETL_BROKER_URL", "redis://127.0.0.1:6379/3")
    monkeypatch.setenv("PROPETL_ARTIFACTS_DIR", str(tmp_path / "shared"))
    monkeypatch.setenv("PROPETL_HEARTBEAT_INTERVAL", "0.5")
    reset_settings()
    s = get_settings()
    assert s.broker_url == "redis://127.0.0.1:6379/3" and not s.embedded_broker
    assert s.artifacts_dir == (tmp_path / "shared").resolve()
    assert s.heartbeat_interval == 0.5
    assert get_settings() is s  # cached


def test_invalid_value_names_the_variable(monkeypatch):
    import pytest
    from pydantic import ValidationError

    monkeypatch.setenv("PROPETL_HEARTBEAT_INTERVAL", "-1")
    with pytest.raises(ValidationError, match="heartbeat_interval"):
        Settings()


def test_concurrent_reads_reuse_pooled_connections(reg, db_url):
    """Thirty threads reading at once (as the web server checks predicts) open at most
    `db_pool_size` connections, not a new one per read."""
    import threading

    from sqlalchemy import event

    from app import db

    engine = db.get_engine(db_url)
    opened = []
    event.listen(engine, "connect", lambda *_: opened.append(1))
    start = threading.Barrier(30)

    def reads() -> None:
        start.wait()
        for _ in range(20):
            reg.prototype_owner("no-such-prototype")

    threads = [threading.Thread(target=reads) for _ in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert 0 < len(opened) <= get_settings().db_pool_size

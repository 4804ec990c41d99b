"""Secrets come only from the environment and never appear in reprs, logs or error bodies."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient

DB_PASSWORD = "db-pa55-XYZ"
BROKER_PASSWORD = "broker-pa55-XYZ"
SECRET_KEY = "secret-key-XYZ-123"
SECRETS = (DB_PASSWORD, BROKER_PASSWORD, SECRET_KEY, "wonder-S3CRET", "test-secret-KEY-123")


@pytest.fixture
def secret_env(monkeypatch, tmp_path):
    from app.settings import reset_settings

    monkeypatch.setenv("PROPETL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv(
        "PROPETL_DATABASE_URL", f"postgresql+psycopg://propetl:{DB_PASSWORD}@127.0.0.1:1/propetl"
    )
    monkeypatch.setenv("PROPETL_BROKER_URL", f"redis://:{BROKER_PASSWORD}@127.0.0.1:1/0")
    monkeypatch.setenv("PROPETL_RESULT_BACKEND", f"redis://:{BROKER_PASSWORD}@127.0.0.1:1/1")
    monkeypatch.setenv("PROPETL_SECRET_KEY", SECRET_KEY)
    monkeypatch.setenv("PROPETL_USERS", "alice:wonder-S3CRET")
    monkeypatch.setenv("PROPETL_AUTH_ENABLED", "true")
    reset_settings()
    yield
    reset_settings()


def _clean(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"a secret leaked: {text[:500]}"


class TestSettingsAndAuthObjects:
    """The settings and login objects read secrets from the environment, and hide them."""

    def test_settings_repr_masks_urls_and_hides_the_key(self, secret_env):
        from app.settings import get_settings

        settings = get_settings()
        assert settings.secret_key == SECRET_KEY and DB_PASSWORD in settings.database_url
        for text in (repr(settings), str(settings), f"{settings!r}"):
            _clean(text)
            assert "postgresql+psycopg://propetl:***@127.0.0.1:1/propetl" in text

    def test_auth_repr_hides_passwords_and_the_signing_key(self, secret_env):
        from app.auth import get_auth

        auth = get_auth()
        assert auth.secret == SECRET_KEY.encode() and auth.check_password("alice", "wonder-S3CRET")
        _clean(repr(auth))
        _clean(str(auth))

    @pytest.mark.parametrize(
        ("url", "shown"),
        [
            ("postgresql://u:p%40ss@h:5432/d", "postgresql://u:***@h:5432/d"),
            ("postgresql://u:p@ss@h/d", "postgresql://u:***@h/d"),
            ("redis://:pw@h:6379/0", "redis://:***@h:6379/0"),
            ("sqla+sqlite:////tmp/x/broker.sqlite", "sqla+sqlite:////tmp/x/broker.sqlite"),
            ("redis://h:6379/0", "redis://h:6379/0"),
        ],
    )
    def test_mask_url(self, url, shown):
        from app.settings import mask_url

        assert mask_url(url) == shown

    def test_a_bad_users_entry_names_the_user_not_the_password(self, monkeypatch, secret_env):
        from app.auth import get_auth

        monkeypatch.setenv("PROPETL_USERS", f"alice:ok,{DB_PASSWORD}")
        with pytest.raises(ValueError) as info:
            get_auth()
        assert "PROPETL_USERS" in str(info.value)
        monkeypatch.setenv("PROPETL_USERS", f"bob{DB_PASSWORD}")  # a name with no password
        with pytest.raises(ValueError):
            get_auth()


class TestCommandLineAndWorker:
    """`propetl db current` and the worker's start-up banner show URLs without passwords."""

    def test_db_current_masks_the_password(self, secret_env, monkeypatch):
        from click.testing import CliRunner

        from app import cli, db

        monkeypatch.setattr(db, "current_revision", lambda *a, **k: "abc")
        monkeypatch.setattr(db, "head_revision", lambda *a, **k: "abc")
        result = CliRunner().invoke(cli.cli, ["db", "current"])
        assert result.exit_code == 0, result.output
        assert "propetl:***@127.0.0.1" in result.output
        _clean(result.output)

    @pytest.mark.filterwarnings("ignore::UserWarning")  # celery: running as root in CI
    def test_worker_banner_masks_broker_and_backend_passwords(self, secret_env):
        from celery.apps.worker import Worker

        from app.queue import create_celery

        app = create_celery()
        banner = Worker(
            app=app, hostname="w@h", without_mingle=True, without_gossip=True, pool_cls="solo"
        ).startup_info()
        assert "redis://:**@127.0.0.1:1/0" in banner
        _clean(banner)
        _clean(app.connection_for_write().as_uri())

    def test_unreachable_database_error_does_not_show_the_password(self, secret_env, caplog):
        from app import db

        caplog.set_level(logging.DEBUG)
        with (
            pytest.raises(Exception) as info,
            db.get_engine().connect(),
        ):  # whatever the driver says
            pass
        db.dispose_engines()
        _clean(str(info.value))
        _clean(caplog.text)


class TestApiErrorBodies:
    """Login failures and validation errors never echo a password or the signing key."""

    def test_login_errors(self, auth_app):
        with TestClient(auth_app) as client:
            for body in (
                {"username": "alice", "password": "wonder-S3CRET-wrong"},
                {"username": "nobody", "password": "wonder-S3CRET"},
                {"password": "wonder-S3CRET"},
                {"username": ["wonder-S3CRET"], "password": "wonder-S3CRET"},
            ):
                reply = client.post("/api/auth/token", json=body)
                assert reply.status_code in (401, 422), reply.text
                _clean(reply.text)
                assert "wonder-S3CRET-wrong" not in reply.text

    def test_token_errors(self, auth_app, auth):
        with TestClient(auth_app) as client:
            token = auth.issue_token("alice")
            body, _, signature = token.partition(".")
            for bad in (f"{body}.{'0' * len(signature)}", "x.y", token + "x", "wonder-S3CRET"):
                reply = client.get("/api/auth/me", headers={"Authorization": f"Bearer {bad}"})
                assert reply.status_code == 401
                _clean(reply.text)
                assert signature not in reply.text

    def test_the_server_log_holds_no_secret(self, auth_app, caplog):
        caplog.set_level(logging.DEBUG)
        with TestClient(auth_app) as client:
            client.post("/api/auth/token", json={"username": "alice", "password": "wonder-S3CRET"})
            client.post("/api/auth/token", json={"username": "alice", "password": "nope"})
        _clean(caplog.text)

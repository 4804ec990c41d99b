"""GET /api/health: what compose and load balancers poll, without logging in."""

from __future__ import annotations


def test_health_answers_without_login(client, auth_client):
    for api in (client, auth_client):
        reply = api.get("/api/health")
        assert reply.status_code == 200, reply.text
        assert reply.json() == {"status": "ok", "database": "ok"}
    assert auth_client.get("/api/jobs").status_code == 401  # the rest still needs a token


def test_health_is_503_when_the_database_does_not_answer(stack):
    from fastapi.testclient import TestClient

    from app.api import registry_dep
    from app.auth import get_auth
    from app.registry import Registry
    from app.server import create_app

    app = create_app(get_auth(), ui=False)
    nowhere = Registry("postgresql+psycopg://postgres@127.0.0.1:1/none")  # nothing listens
    app.dependency_overrides[registry_dep] = lambda: nowhere
    with TestClient(app) as api:
        reply = api.get("/api/health")
    assert reply.status_code == 503
    assert reply.json() == {"status": "unavailable", "database": "OperationalError"}

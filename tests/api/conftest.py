"""Fixtures: a trained tiny prototype, and API clients with login off and on."""

from __future__ import annotations

import pytest

from tests.dashboard_stack import make_stack


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    yield from make_stack(tmp_path_factory.mktemp("dashboard"))


@pytest.fixture(scope="session")
def client(stack):
    from fastapi.testclient import TestClient

    from app.auth import get_auth
    from app.server import create_app

    with TestClient(create_app(get_auth(), ui=False)) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def auth(stack):
    from dataclasses import replace

    from app.auth import get_auth

    return replace(
        get_auth(),
        enabled=True,
        users={"alice": "wonder", "bob": "builder", "root": "toor"},
        admins=frozenset({"root"}),
        secret=b"test-secret",
    )


@pytest.fixture(scope="session")
def auth_client(auth):
    from fastapi.testclient import TestClient

    from app.server import create_app

    with TestClient(create_app(auth, ui=False)) as test_client:
        yield test_client

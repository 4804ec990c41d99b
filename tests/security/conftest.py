"""Fixtures: the shared trained tiny stack, and the API app over it (login off and on)."""

from __future__ import annotations

import pytest

from tests.dashboard_stack import make_stack


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    yield from make_stack(tmp_path_factory.mktemp("security"))


@pytest.fixture(scope="session")
def app(stack):
    from app.auth import get_auth
    from app.server import create_app

    return create_app(get_auth(), ui=False)


@pytest.fixture(scope="session")
def auth(stack):
    from dataclasses import replace

    from app.auth import get_auth

    return replace(
        get_auth(),
        enabled=True,
        users={"alice": "wonder-S3CRET", "bob": "builder"},
        admins=frozenset(),
        secret=b"test-secret-KEY-123",
    )


@pytest.fixture(scope="session")
def auth_app(auth):
    from app.server import create_app

    return create_app(auth, ui=False)

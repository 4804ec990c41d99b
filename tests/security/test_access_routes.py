"""With login on, every route of the API (read from its OpenAPI schema, so routes added later
are covered) needs a valid token, and no user reads, changes or deletes another's work.

`OWNED` lists, route by route, how to reach work that belongs to alice; bob must get 403
there. A new route that names a job, sweep or prototype must get a row there (or in
`NOT_OWNED`), or `test_every_route_with_owned_work_has_an_owner_row` fails.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.dashboard_stack import token_for

#: The only routes open without a token.
PUBLIC = {("post", "/api/auth/token")}
#: Routes whose path parameters do not name anyone's work.
NOT_OWNED: set[tuple[str, str]] = set()
SPEC = {"config": {"backbone": "tiny-bert", "tasks": ["rotten_tomatoes"], "max_examples": 16,
                   "max_steps": 2, "batch_size": 8}}
PASSWORDS = {"alice": "wonder-S3CRET", "bob": "builder"}


def _schema_routes(app) -> list[tuple[str, str]]:
    return sorted((method, path) for path, item in app.openapi()["paths"].items()
                  for method in item if method in ("get", "post", "put", "patch", "delete"))


def _fill(path: str) -> str:
    return (path.replace("{job_id}", "1").replace("{sweep_id}", "1").replace("{uid}", "x")
            .replace("{task}", "t"))


@pytest.fixture(scope="module")
def client(auth_app):
    from fastapi.testclient import TestClient

    with TestClient(auth_app) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def alices(client, stack) -> dict[str, Any]:
    """Work of alice: a trained job and its prototype, a queued job, a sweep."""
    from worker.runner import execute

    alice = token_for(client, "alice", PASSWORDS["alice"])
    trained = client.post("/api/jobs", json=SPEC, headers=alice).json()["id"]
    assert execute(trained, registry=stack.registry) == "succeeded"
    queued = client.post("/api/jobs", json=SPEC, headers=alice).json()["id"]
    sweep = client.post("/api/sweeps", json={"base": SPEC, "grid": {"lr": [0.01, 0.02]}},
                        headers=alice)
    assert sweep.status_code == 201, sweep.text
    proto = stack.registry.prototype_for_job(trained)
    return {"job_id": queued, "trained": trained, "sweep_id": sweep.json()["id"],
            "uid": proto.uid, "task": "rotten_tomatoes"}


#: (method, path, json body) reaching alice's work; the body may use the same {names}.
OWNED: list[tuple[str, str, dict[str, Any] | None]] = [
    ("get", "/api/jobs/{job_id}", None),
    ("get", "/api/jobs/{job_id}/log", None),
    ("post", "/api/jobs/{job_id}/cancel", None),
    ("post", "/api/jobs/{job_id}/retry", None),
    ("get", "/api/sweeps/{sweep_id}", None),
    ("get", "/api/prototypes/{uid}", None),
    ("get", "/api/prototypes/{uid}/download", None),
    ("get", "/api/prototypes/{uid}/masks", None),
    ("get", "/api/prototypes/{uid}/masks/{task}/download", None),
    ("get", "/api/prototypes/{uid}/masks/{task}/export", None),
    ("delete", "/api/prototypes/{uid}/masks/{task}", None),
    ("post", "/api/predict", {"prototype": "{uid}", "task": "{task}", "text": "fine film"}),
]
#: Listings: alice's work must not show up in bob's.
LISTINGS = [("/api/jobs", "id", ("job_id", "trained")), ("/api/sweeps", "id", ("sweep_id",)),
            ("/api/prototypes", "uid", ("uid",))]


def _format(value: Any, ids: dict[str, Any]) -> Any:
    if isinstance(value, str):
        return value.format(**ids)
    if isinstance(value, dict):
        return {k: _format(v, ids) for k, v in value.items()}
    return value


def test_every_route_but_login_needs_a_token(client, auth_app):
    routes = _schema_routes(auth_app)
    assert len(routes) > 15
    forged = {"Authorization": "Bearer eyJ1IjoiYWxpY2UifQ.0000"}
    for method, path in routes:
        if (method, path) in PUBLIC:
            continue
        for headers in ({}, forged):
            reply = client.request(method, _fill(path), headers=headers,
                                   json=SPEC if method == "post" else None)
            assert reply.status_code == 401, (method, path, headers, reply.text)


def test_docs_and_login_are_public(client):
    assert client.get("/api/openapi.json").status_code == 200
    assert client.get("/api/docs").status_code == 200
    assert client.post("/api/auth/token", json={"username": "bob", "password": "builder"}
                       ).status_code == 200


def test_a_revoked_token_is_refused_everywhere(client, auth_app):
    bob = token_for(client, "bob", PASSWORDS["bob"])
    assert client.get("/api/auth/me", headers=bob).status_code == 200
    assert client.delete("/api/auth/token", headers=bob).status_code == 204
    for method, path in _schema_routes(auth_app):
        if (method, path) in PUBLIC:
            continue
        reply = client.request(method, _fill(path), headers=bob,
                               json=SPEC if method == "post" else None)
        assert reply.status_code == 401, (method, path, reply.text)
        assert "revoked" in reply.json()["detail"]


def test_every_route_with_owned_work_has_an_owner_row(auth_app):
    names = ("{job_id}", "{sweep_id}", "{uid}")
    owned = {(m, p) for m, p in _schema_routes(auth_app) if any(n in p for n in names)}
    rows = {(m, p) for m, p, _ in OWNED}
    assert owned - NOT_OWNED <= rows, f"routes without an owner check row: {owned - rows}"


@pytest.mark.parametrize(("method", "path", "body"), OWNED, ids=[f"{m} {p}" for m, p, _ in OWNED])
def test_another_user_gets_403(client, alices, method, path, body):
    bob = token_for(client, "bob", PASSWORDS["bob"])
    reply = client.request(method, path.format(**alices), headers=bob,
                           json=_format(body, alices))
    assert reply.status_code == 403, (reply.status_code, reply.text)
    assert "alice" in reply.json()["detail"]


@pytest.mark.parametrize(("path", "key", "names"), LISTINGS)
def test_listings_show_only_the_callers_work(client, alices, path, key, names):
    bob = token_for(client, "bob", PASSWORDS["bob"])
    alice = token_for(client, "alice", PASSWORDS["alice"])
    mine = {row[key] for row in client.get(path, headers=alice).json()}
    theirs = {row[key] for row in client.get(path, headers=bob).json()}
    assert {alices[n] for n in names} <= mine
    assert not mine & theirs
    if path != "/api/prototypes":
        assert client.get(path, params={"owner": "alice"}, headers=bob).status_code == 403


def test_the_owner_reads_their_own_work(client, alices):
    alice = token_for(client, "alice", PASSWORDS["alice"])
    for method, path, _ in OWNED:
        if method == "get":
            reply = client.get(path.format(**alices), headers=alice)
            assert reply.status_code in (200, 422), (path, reply.text)  # 422: export refused
    reply = client.post("/api/predict", json=_format(OWNED[-1][2], alices), headers=alice)
    assert reply.status_code == 200, reply.text


def test_the_dashboard_needs_login(auth):
    """The Gradio UI: without a login session the page carries no components and every
    event, upload and file route answers 401; the same users' passwords log in."""
    from fastapi.testclient import TestClient

    from app.server import create_app

    with TestClient(create_app(auth, ui=True)) as ui:
        page = ui.get("/")
        assert '"auth_required":true' in page.text and '"components":[]' in page.text
        for method, path in [("get", "/config"), ("get", "/gradio_api/info"),
                             ("post", "/gradio_api/queue/join"), ("post", "/gradio_api/run/predict"),
                             ("post", "/gradio_api/upload"), ("get", "/gradio_api/file=/etc/hosts")]:
            reply = ui.request(method, path, json={} if method == "post" else None)
            assert reply.status_code == 401, (path, reply.status_code, reply.text[:200])
        assert not ui.post("/login", data={"username": "bob", "password": "nope"}).is_success
        assert ui.post("/login", data={"username": "bob", "password": "builder"}).is_success
        assert ui.get("/config").status_code == 200

"""With login on, every route of the API (read from its OpenAPI schema, so routes added later
are covered) needs a valid token, and no user reads, changes or deletes another's work.

`OWNED` lists, route by route, how to reach work that belongs to alice; bob must get 404
there, with the very answer a missing job, sweep or prototype gets (nothing tells him it
exists). A new route that names a job, sweep or prototype must get a row there (or in
`NOT_OWNED`), or `test_every_route_with_owned_work_has_an_owner_row` fails.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.dashboard_stack import token_for

#: The only routes open without a token.
PUBLIC = {("post", "/api/auth/token"), ("get", "/api/health")}
#: Routes whose path parameters do not name anyone's work, or checked by a test of their
#: own (a multipart upload): `test_labelling_anothers_prototype_is_not_found`.
NOT_OWNED: set[tuple[str, str]] = {("post", "/api/prototypes/{uid}/label")}
SPEC = {
    "config": {
        "backbone": "tiny-bert",
        "tasks": ["rotten_tomatoes"],
        "max_examples": 16,
        "max_steps": 2,
        "batch_size": 8,
    }
}
PASSWORDS = {"alice": "wonder-S3CRET", "bob": "builder"}


def _schema_routes(app) -> list[tuple[str, str]]:
    return sorted(
        (method, path)
        for path, item in app.openapi()["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    )


def _fill(path: str) -> str:
    return (
        path.replace("{job_id}", "1")
        .replace("{sweep_id}", "1")
        .replace("{uid}", "x")
        .replace("{task}", "t")
    )


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
    sweep = client.post(
        "/api/sweeps", json={"base": SPEC, "grid": {"lr": [0.01, 0.02]}}, headers=alice
    )
    assert sweep.status_code == 201, sweep.text
    proto = stack.registry.prototype_for_job(trained)
    return {
        "job_id": queued,
        "trained": trained,
        "sweep_id": sweep.json()["id"],
        "uid": proto.uid,
        "task": "rotten_tomatoes",
    }


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
    ("get", "/api/jobs/{trained}/run", None),
    ("get", "/api/jobs/{trained}/labels", None),
    ("get", "/api/jobs/{trained}/metrics.csv", None),
    ("patch", "/api/jobs/{job_id}", {"note": "bob was here"}),
    ("get", "/api/prototypes/{uid}/tasks", None),
    ("post", "/api/prototypes/{uid}/tasks", {"tasks": ["bbc_news"], "max_steps": 2}),
    ("delete", "/api/prototypes/{uid}/tasks/{task}", None),
    ("post", "/api/predict", {"prototype": "{uid}", "task": "{task}", "text": "fine film"}),
]
#: Listings: alice's work must not show up in bob's.
LISTINGS = [
    ("/api/jobs", "id", ("job_id", "trained")),
    ("/api/sweeps", "id", ("sweep_id",)),
    ("/api/prototypes", "uid", ("uid",)),
]


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
            reply = client.request(
                method, _fill(path), headers=headers, json=SPEC if method == "post" else None
            )
            assert reply.status_code == 401, (method, path, headers, reply.text)


def test_docs_and_login_are_public(client):
    assert client.get("/api/openapi.json").status_code == 200
    assert client.get("/api/docs").status_code == 200
    assert (
        client.post("/api/auth/token", json={"username": "bob", "password": "builder"}).status_code
        == 200
    )


def test_a_revoked_token_is_refused_everywhere(client, auth_app):
    bob = token_for(client, "bob", PASSWORDS["bob"])
    assert client.get("/api/auth/me", headers=bob).status_code == 200
    assert client.delete("/api/auth/token", headers=bob).status_code == 204
    for method, path in _schema_routes(auth_app):
        if (method, path) in PUBLIC:
            continue
        reply = client.request(
            method, _fill(path), headers=bob, json=SPEC if method == "post" else None
        )
        assert reply.status_code == 401, (method, path, reply.text)
        assert "revoked" in reply.json()["detail"]


def test_every_route_with_owned_work_has_an_owner_row(auth_app):
    names = ("{job_id}", "{sweep_id}", "{uid}")
    owned = {(m, p) for m, p in _schema_routes(auth_app) if any(n in p for n in names)}
    rows = {(m, p.replace("{trained}", "{job_id}")) for m, p, _ in OWNED}
    assert owned - NOT_OWNED <= rows, f"routes without an owner check row: {owned - rows}"


#: Ids that name nothing: what bob gets for alice's work must read the same.
MISSING = {
    "job_id": 987654,
    "trained": 987653,
    "sweep_id": 987652,
    "uid": "00000000-0000-0000-0000-000000000000",
    "task": "rotten_tomatoes",
}


@pytest.mark.parametrize(("method", "path", "body"), OWNED, ids=[f"{m} {p}" for m, p, _ in OWNED])
def test_another_users_work_is_not_found_like_missing_work(client, alices, method, path, body):
    bob = token_for(client, "bob", PASSWORDS["bob"])
    reply = client.request(method, path.format(**alices), headers=bob, json=_format(body, alices))
    assert reply.status_code == 404, (reply.status_code, reply.text)
    assert "alice" not in reply.text
    missing = client.request(
        method, path.format(**MISSING), headers=bob, json=_format(body, MISSING)
    )
    assert missing.status_code == 404
    expected = missing.json()["detail"]
    for key in ("job_id", "trained", "sweep_id", "uid"):
        expected = expected.replace(str(MISSING[key]), str(alices[key]))
    assert reply.json()["detail"] == expected


def test_a_task_route_of_anothers_prototype_does_not_tell_which_tasks_exist(client, alices):
    """Owner check first: an existing and a made-up task of alice's prototype read alike."""
    bob = token_for(client, "bob", PASSWORDS["bob"])
    for route in ("download", "export"):
        replies = [
            client.get(f"/api/prototypes/{alices['uid']}/masks/{task}/{route}", headers=bob)
            for task in (alices["task"], "no-such-task")
        ]
        assert [r.status_code for r in replies] == [404, 404]
        assert replies[0].json() == replies[1].json() == {"detail": f"no prototype {alices['uid']}"}


def test_short_prototype_ids_work_for_their_owner_only(client, alices):
    """The 8-character id the dashboard shows works in the API, for its owner."""
    alice = token_for(client, "alice", PASSWORDS["alice"])
    bob = token_for(client, "bob", PASSWORDS["bob"])
    short = alices["uid"][:8]
    reply = client.get(f"/api/prototypes/{short}", headers=alice)
    assert reply.status_code == 200 and reply.json()["uid"] == alices["uid"]
    body = {"prototype": short, "task": alices["task"], "text": "fine film"}
    reply = client.post("/api/predict", json=body, headers=alice)
    assert reply.status_code == 200 and reply.json()["prototype"] == alices["uid"]
    assert client.get(f"/api/prototypes/{short}", headers=bob).status_code == 404
    assert client.get(f"/api/prototypes/{alices['uid'][:2]}", headers=alice).status_code == 404


def test_an_ambiguous_short_id_is_a_clear_422(client, alices, stack, monkeypatch):
    """Two of alice's prototypes starting alike: the short id is refused, saying why."""
    alice = token_for(client, "alice", PASSWORDS["alice"])
    registry = stack.registry
    twin = alices["uid"][:6] + "-twin"
    real = registry.prototype_uids
    monkeypatch.setattr(
        type(registry),
        "prototype_uids",
        lambda self, prefix, limit=50: [*real(prefix, limit), twin],
    )
    from app import access as access_module

    monkeypatch.setattr(
        access_module.Access, "_owners_of_uids", lambda self, uids: dict.fromkeys(uids, "alice")
    )
    reply = client.get(f"/api/prototypes/{alices['uid'][:6]}", headers=alice)
    assert reply.status_code == 422, reply.text
    assert "ambiguous" in reply.json()["detail"] and twin in reply.json()["detail"]


@pytest.mark.parametrize(("path", "key", "names"), LISTINGS)
def test_listings_show_only_the_callers_work(client, alices, path, key, names):
    bob = token_for(client, "bob", PASSWORDS["bob"])
    alice = token_for(client, "alice", PASSWORDS["alice"])
    mine = {row[key] for row in client.get(path, headers=alice).json()}
    theirs = {row[key] for row in client.get(path, headers=bob).json()}
    assert {alices[n] for n in names} <= mine
    assert not mine & theirs
    if path != "/api/prototypes":  # asking for alice's work by name shows nothing either
        reply = client.get(path, params={"owner": "alice"}, headers=bob)
        assert reply.status_code == 200 and reply.json() == []


def test_the_owner_reads_their_own_work(client, alices):
    alice = token_for(client, "alice", PASSWORDS["alice"])
    for method, path, _ in OWNED:
        if method == "get":
            reply = client.get(path.format(**alices), headers=alice)
            # 422: export refused; 409: the trained job is not a labelling job
            assert reply.status_code in (200, 409, 422), (path, reply.text)
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
        for method, path in [
            ("get", "/config"),
            ("get", "/gradio_api/info"),
            ("post", "/gradio_api/queue/join"),
            ("post", "/gradio_api/run/predict"),
            ("post", "/gradio_api/upload"),
            ("get", "/gradio_api/file=/etc/hosts"),
        ]:
            reply = ui.request(method, path, json={} if method == "post" else None)
            assert reply.status_code == 401, (path, reply.status_code, reply.text[:200])
        assert not ui.post("/login", data={"username": "bob", "password": "nope"}).is_success
        assert ui.post("/login", data={"username": "bob", "password": "builder"}).is_success
        assert ui.get("/config").status_code == 200


def test_labelling_anothers_prototype_is_not_found(client, alices):
    bob = token_for(client, "bob", PASSWORDS["bob"])
    data = b"text\na fine film\n"
    replies = [
        client.post(
            f"/api/prototypes/{uid}/label",
            headers=bob,
            files={"file": ("rows.csv", data, "text/csv")},
            data={"task": alices["task"]},
        )
        for uid in (alices["uid"], MISSING["uid"])
    ]
    assert [r.status_code for r in replies] == [404, 404], [r.text for r in replies]
    assert replies[0].json()["detail"] == replies[1].json()["detail"].replace(
        MISSING["uid"], alices["uid"]
    )


def _label(uid: str) -> dict[str, Any]:
    """A `label` field as a labelling job stores it."""
    return {
        "prototype": uid,
        "input": "0123456789abcdef0123456789abcdef/input.csv",
        "task": "rotten_tomatoes",
        "text_column": "text",
        "task_column": "task",
        "filename": "lab.csv",
    }


def test_job_and_sweep_specs_cannot_label_files(client, alices, stack):
    """Files are labelled only through the label route (it checks that the prototype and the
    file are the caller's): a spec naming `label` is refused, alike for another's prototype
    and a missing one, and nothing is queued."""
    bob = token_for(client, "bob", PASSWORDS["bob"])
    before = len(stack.registry.list_jobs(owner="bob", limit=500))
    texts: dict[str, list[str]] = {"job": [], "sweep": []}
    for uid in (alices["uid"], MISSING["uid"]):
        job = client.post("/api/jobs", headers=bob, json={**SPEC, "label": _label(uid)})
        sweep = client.post(
            "/api/sweeps",
            headers=bob,
            json={"base": {**SPEC, "label": _label(uid)}, "grid": {"lr": [0.01, 0.02]}},
        )
        for what, reply, where in (
            ("job", job, ["body", "label"]),
            ("sweep", sweep, ["body", "base", "label"]),
        ):
            assert reply.status_code == 422, (what, reply.text)
            assert [e["loc"] for e in reply.json()["detail"]] == [where], reply.text
            assert "/label" in reply.json()["detail"][0]["msg"]  # where files are labelled
            texts[what].append(reply.text.replace(uid, "U"))
    assert all(a == b for a, b in texts.values()), texts
    assert len(stack.registry.list_jobs(owner="bob", limit=500)) == before
    assert (
        "label"
        not in client.get("/api/openapi.json").json()["components"]["schemas"]["JobSpec"][
            "properties"
        ]
    )


def test_a_worker_labels_only_with_the_job_owners_prototype(alices, stack, monkeypatch):
    """Defence in depth: a labelling job of bob's naming alice's prototype, queued without
    the label route's check, fails exactly like one naming a missing prototype; alice's own
    labelling job runs."""
    import io
    from types import SimpleNamespace

    from app.labels import submit_label_job
    from app.registry import Registry
    from worker.runner import execute

    monkeypatch.setenv("PROPETL_USERS", ",".join(f"{u}:{p}" for u, p in PASSWORDS.items()))
    plain = stack.registry
    registry = Registry(
        plain.url,
        enqueue=lambda *a: None,
        settings=plain.settings.model_copy(update={"auth_enabled": True}),
    )
    proto = registry.get_prototype(alices["uid"])

    def run(owner: str, uid: str) -> str:
        target = SimpleNamespace(
            uid=uid,
            mask_sets=proto.mask_sets,
            backbone=proto.backbone,
            train_config=proto.train_config,
        )
        job_id = submit_label_job(
            registry,
            target,
            owner,
            io.BytesIO(b"text\na fine film\n"),
            "rows.csv",
            task=alices["task"],
        )
        outcome = execute(job_id, registry=registry)
        return f"{outcome} {registry.get_job(job_id).error}".replace(uid, "U")

    assert (
        run("bob", alices["uid"])
        == run("bob", MISSING["uid"])
        == "failed NotFoundError: no prototype U"
    )
    assert run("alice", alices["uid"]) == "succeeded None"


def test_adding_tasks_in_the_dashboard_needs_ones_own_prototype(auth, alices, stack):
    """Launch's "add tasks to a prototype" called as bob (through the page's access guard)
    with alice's prototype: answered as for a missing one, nothing queued."""
    from types import SimpleNamespace

    from app.ui import grow, guard
    from app.ui.common import Ctx

    handler = guard._wrap(grow.submit_add, auth)

    def submit(user: str, uid: str) -> tuple[str, int | None]:
        return handler(
            SimpleNamespace(username=user),
            Ctx(auth),
            "more",
            "",
            uid,
            ["bbc_news"],
            {"max_steps": 2, "max_examples": 16},
        )

    before = len(stack.registry.list_jobs(owner="bob", limit=500))
    (theirs, job), (missing, none) = submit("bob", alices["uid"]), submit("bob", MISSING["uid"])
    assert job is None and none is None, theirs
    assert theirs.replace(alices["uid"], "U") == missing.replace(MISSING["uid"], "U")
    assert len(stack.registry.list_jobs(owner="bob", limit=500)) == before
    message, job = submit("alice", alices["uid"])  # her own: queued
    assert job is not None, message
    stack.registry.request_cancel(job)

"""What an independent probe broke through the REST API, each now refused clearly:
non-ASCII tokens and non-finite JSON numbers (were 500), server paths in job specs (and 422
texts telling whether a file exists), others' uploaded tasks in `GET /api/tasks`, unbounded
numbers, only the first problem reported, no login throttling, and a job list whose
`best_metric` disagreed with the job's detail."""

from __future__ import annotations

import json
import logging
from dataclasses import replace

import pytest
from fastapi.testclient import TestClient

from tests.dashboard_stack import token_for

PASSWORDS = {"alice": "wonder-S3CRET", "bob": "builder"}
TINY = {
    "backbone": "tiny-bert",
    "tasks": ["rotten_tomatoes"],
    "max_examples": 16,
    "max_steps": 2,
    "batch_size": 8,
}
#: alice's own data: its labels must never reach bob.
SECRET_CSV = "text,label\n" + "".join(
    f"private sentence {i},{'zebra_secret' if i % 2 else 'yak_secret'}\n" for i in range(40)
)


@pytest.fixture(scope="module")
def client(auth_app):
    with TestClient(auth_app) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def users(client):
    return {name: token_for(client, name, pw) for name, pw in PASSWORDS.items()}


def _locs(reply) -> set[tuple]:
    assert reply.status_code == 422, reply.text
    return {tuple(e["loc"]) for e in reply.json()["detail"]}


# --- 500s ------------------------------------------------------------------------------


@pytest.mark.parametrize("header", ["X-API-Token", "Authorization"])
def test_a_non_ascii_token_is_401_not_500(client, header):
    value = b"x.\xc3\xa9" if header == "X-API-Token" else b"Bearer x.\xc3\xa9\xff"
    reply = client.get("/api/jobs", headers={header: value})
    assert reply.status_code == 401, reply.text
    assert reply.json()["detail"] == "invalid token"


@pytest.mark.parametrize(
    ("path", "body", "where"),
    [
        ("/api/jobs", '{"backbone": "tiny-bert", "max_steps": Infinity}', ["config", "max_steps"]),
        ("/api/jobs", '{"backbone": "tiny-bert", "lr": NaN}', ["config", "lr"]),
        (
            "/api/jobs",
            '{"config": {"propetl": {"keep": -Infinity}}}',
            ["config", "propetl", "keep"],
        ),
        ("/api/predict", '{"prototype": NaN, "task": "x", "text": "y"}', ["prototype"]),
        ("/api/sweeps", '{"base": {"lr": NaN}, "grid": {"keep": [0.1]}}', None),
    ],
)
def test_non_finite_numbers_are_a_clear_422(client, users, path, body, where):
    reply = client.post(
        path, content=body, headers={**users["alice"], "Content-Type": "application/json"}
    )
    assert reply.status_code == 422, reply.text
    detail = reply.json()["detail"]  # valid JSON: NaN / Infinity are named as text
    if where is not None:
        assert any(e["loc"][1:] == where for e in detail), detail
    assert "nan" in reply.text.lower() or "infinity" in reply.text.lower()


# --- server paths, uploads, tasks --------------------------------------------------------


@pytest.fixture(scope="module")
def alices_upload(client, users, stack):
    """alice uploads a file and trains a job on it (by the upload's name)."""
    from worker.runner import execute

    reply = client.post(
        "/api/uploads",
        headers=users["alice"],
        files={"file": ("secret_reviews.csv", SECRET_CSV.encode(), "text/csv")},
    )
    assert reply.status_code == 201, reply.text
    upload = reply.json()
    assert upload["name"] == "secret_reviews.csv" and upload["task"] == "secret_reviews"
    job = client.post("/api/jobs", headers=users["alice"], json={**TINY, "tasks": [upload["name"]]})
    assert job.status_code == 201, job.text
    assert job.json()["tasks"] == ["secret_reviews"]  # the task's one name
    assert execute(job.json()["id"], registry=stack.registry) == "succeeded"
    return {**upload, "job_id": job.json()["id"]}


@pytest.fixture(scope="module")
def bobs_same_name(client, users, alices_upload, stack):
    """bob trains, after alice, from an upload of the same name with other labels and sizes."""
    from worker.runner import execute

    theirs = SECRET_CSV.replace("zebra_secret", "bobs_cat").replace("yak_secret", "bobs_dog")
    theirs += "".join(
        f"bobs sentence {i},{'bobs_cat' if i % 2 else 'bobs_dog'}\n" for i in range(20)
    )
    reply = client.post(
        "/api/uploads",
        headers=users["bob"],
        files={"file": ("secret_reviews.csv", theirs.encode(), "text/csv")},
    )
    assert reply.status_code == 201, reply.text
    job = client.post(
        "/api/jobs", headers=users["bob"], json={**TINY, "tasks": [reply.json()["name"]]}
    )
    assert job.status_code == 201, job.text
    assert execute(job.json()["id"], registry=stack.registry) == "succeeded"
    return reply.json()


def test_uploaded_tasks_are_their_owners_alone(client, users, alices_upload):
    mine = {t["name"]: t for t in client.get("/api/tasks", headers=users["alice"]).json()}
    assert "zebra_secret" in mine["secret_reviews"]["label_names"]
    theirs = client.get("/api/tasks", headers=users["bob"])
    assert "secret_reviews" not in {t["name"] for t in theirs.json()}
    assert "zebra_secret" not in theirs.text
    assert [u["name"] for u in client.get("/api/uploads", headers=users["bob"]).json()] == []
    # bob naming alice's upload reads exactly like naming an upload nobody has
    replies = [
        client.post("/api/jobs", headers=users["bob"], json={**TINY, "tasks": [name]})
        for name in ("secret_reviews.csv", "nobody_has_this.csv")
    ]
    texts = [r.json()["detail"][0]["msg"] for r in replies]
    assert [r.status_code for r in replies] == [422, 422]
    assert texts[0].replace("secret_reviews", "X") == texts[1].replace("nobody_has_this", "X")


def test_a_task_name_both_users_uploaded_shows_each_their_own_labels(
    client, users, alices_upload, bobs_same_name
):
    """bob trains from an upload of the same name with other labels: the task row is shared
    by name, its description never is."""
    seen = {}
    for name in ("alice", "bob"):
        tasks = client.get("/api/tasks", headers=users[name])
        seen[name] = ({t["name"]: t for t in tasks.json()}["secret_reviews"], tasks.text)
    assert set(seen["alice"][0]["label_names"]) == {"yak_secret", "zebra_secret"}
    assert set(seen["bob"][0]["label_names"]) == {"bobs_cat", "bobs_dog"}
    assert "bobs_" not in seen["alice"][1] and "_secret" not in seen["bob"][1]
    for name, upload in (("alice", alices_upload), ("bob", bobs_same_name)):  # each one's own
        assert seen[name][0]["sizes"] == upload["sizes"], (name, seen[name][0])
        assert seen[name][0]["source"] == "file" and seen[name][0]["main_metric"] == "accuracy"


def test_a_prototype_shows_its_own_runs_labels_not_the_last_upload_of_that_name(
    client, users, alices_upload, bobs_same_name, stack
):
    """alice's prototype, read after bob's same-named task finished, names her labels."""
    uid = stack.registry.prototype_for_job(alices_upload["job_id"]).uid
    detail = client.get(f"/api/prototypes/{uid}", headers=users["alice"])
    masks = client.get(f"/api/prototypes/{uid}/masks", headers=users["alice"])
    for reply, rows in ((detail, detail.json()["mask_sets"]), (masks, masks.json())):
        assert reply.status_code == 200, reply.text
        [row] = [r for r in rows if r["task"] == "secret_reviews"]
        assert set(row["label_names"]) == {"yak_secret", "zebra_secret"}
        assert "bobs_" not in reply.text


def test_server_paths_are_refused_alike_whether_or_not_they_exist(client, users, stack):
    upload_dir = stack.data_dir / "uploads"
    real = next(upload_dir.rglob("secret_reviews.csv"), None) or stack.data_dir / "x.csv"
    texts = []
    for path in (str(real), "/no/such/file.csv", "/etc/passwd", "../../etc/hosts"):
        reply = client.post("/api/jobs", headers=users["bob"], json={**TINY, "tasks": [path]})
        assert _locs(reply) == {("body", "config", "tasks", 0)}
        texts.append(reply.json()["detail"][0]["msg"].replace(repr(path), "P"))
    assert len(set(texts)) == 1, texts
    assert "zebra" not in "".join(texts) and "text,label" not in "".join(texts)


def test_backbone_folders_only_from_the_allow_list(client, users, stack, tmp_path, monkeypatch):
    from app.settings import reset_settings
    from propetl.tiny import tiny_backbone

    allowed = tmp_path / "models"
    folder = allowed / "tiny"
    tiny_backbone("bert").save_pretrained(folder)
    outside = tmp_path / "elsewhere"
    tiny_backbone("bert").save_pretrained(outside)
    monkeypatch.setenv("PROPETL_BACKBONE_DIRS", str(allowed))
    reset_settings()
    try:
        for name in (str(outside), "/etc", str(allowed / ".." / "elsewhere")):
            reply = client.post("/api/jobs", headers=users["bob"], json={**TINY, "backbone": name})
            assert _locs(reply) == {("body", "config", "backbone")}, name
            assert "PROPETL_BACKBONE_DIRS" in reply.text
        reply = client.post(
            "/api/jobs", headers=users["bob"], json={**TINY, "backbone": str(folder), "queue": None}
        )
        assert reply.status_code == 201, reply.text
        client.post(f"/api/jobs/{reply.json()['id']}/cancel", headers=users["bob"])
    finally:
        monkeypatch.delenv("PROPETL_BACKBONE_DIRS")
        reset_settings()


def test_a_dataset_card_refuses_backbone_folders_like_a_job_spec(client, users, stack, tmp_path):
    """The card loads the backbone's tokenizer: a server folder outside PROPETL_BACKBONE_DIRS
    is refused with the job spec's words before anything is read, existing or not."""
    from propetl.tiny import tiny_backbone

    folder = tmp_path / "elsewhere"
    tiny_backbone("bert").save_pretrained(folder)
    texts = set()
    for name in (str(folder), "/etc", "/no/such/folder", str(stack.data_dir / "artifacts")):
        reply = client.get(
            "/api/tasks/rotten_tomatoes/card", headers=users["bob"], params={"backbone": name}
        )
        assert _locs(reply) == {("query", "backbone")}, (name, reply.text)
        job = client.post("/api/jobs", headers=users["bob"], json={**TINY, "backbone": name})
        assert _locs(job) == {("body", "config", "backbone")}
        assert reply.json()["detail"][0]["msg"] == job.json()["detail"][0]["msg"]
        texts.add(reply.text.replace(json.dumps(name), "P"))
    assert len(texts) == 1, texts


def test_a_relative_name_answers_alike_whether_or_not_a_server_folder_has_it(
    client, users, stack, tmp_path, monkeypatch
):
    """A name that is not a path is a hub id (`org/model` too): a folder of that name in the
    server's working directory, even a model's, changes no answer of a job spec (backbone
    or task) or a dataset card; the CLI still names any folder."""
    from app.specs import JobSpec
    from propetl.tiny import tiny_backbone

    for name in ("here_model", "org/here_model"):
        tiny_backbone("bert").save_pretrained(tmp_path / name)
    monkeypatch.chdir(tmp_path)
    for there, absent in (("here_model", "gone_model"), ("org/here_model", "org/gone_model")):
        answers = []
        for name in (there, absent):
            job = client.post("/api/jobs", headers=users["bob"], json={**TINY, "backbone": name})
            assert _locs(job) == {("body", "config", "backbone")}
            card = client.get(
                "/api/tasks/rotten_tomatoes/card", headers=users["bob"], params={"backbone": name}
            )
            task = client.post("/api/jobs", headers=users["bob"], json={**TINY, "tasks": [name]})
            answers.append([(r.status_code, r.text.replace(name, "N")) for r in (job, card, task)])
        assert answers[0] == answers[1], answers
        assert "PROPETL_BACKBONE_DIRS" not in str(answers)  # looked up as a hub id
    spec = JobSpec.model_validate({**TINY, "backbone": "here_model"}, context={"paths": True})
    assert spec.config.backbone == "here_model"


# --- bounds, every problem at once, queues ------------------------------------------------


def test_unbounded_values_are_refused_all_at_once(client, users):
    body = {
        **TINY,
        "batch_size": 10**12,
        "max_steps": 10**18,
        "seed": 2**80,
        "config": {"propetl": {"bottleneck": 10**9, "lora_r": 10**6}},
    }
    locs = _locs(client.post("/api/jobs", headers=users["alice"], json=body))
    assert {
        ("body", "config", "batch_size"),
        ("body", "config", "max_steps"),
        ("body", "config", "seed"),
        ("body", "config", "propetl", "bottleneck"),
        ("body", "config", "propetl", "lora_r"),
    } <= locs


def test_petl_sizes_are_bounded_by_the_backbone(client, users):
    """tiny-bert is 32 wide: a 512 bottleneck passes the fixed bound but not its own."""
    body = {**TINY, "config": {"propetl": {"bottleneck": 512, "lora_r": 64, "prefix_len": 500}}}
    reply = client.post("/api/jobs", headers=users["alice"], json=body)
    assert _locs(reply) == {
        ("body", "config", "propetl", n) for n in ("bottleneck", "lora_r", "prefix_len")
    }
    assert "hidden size 32" in reply.text


def test_every_bad_field_is_named_not_only_the_first(client, users):
    body = {**TINY, "lr": -1, "config": {"propetl": {"keep": 0, "bottleneck": -1}}}
    locs = _locs(client.post("/api/jobs", headers=users["alice"], json=body))
    assert {
        ("body", "config", "lr"),
        ("body", "config", "propetl", "keep"),
        ("body", "config", "propetl", "bottleneck"),
    } <= locs


def test_a_queue_no_worker_reads_is_refused_unless_listed(client, users, monkeypatch):
    from app.settings import reset_settings

    reply = client.post("/api/jobs", headers=users["alice"], json={**TINY, "queue": "nobody"})
    assert _locs(reply) == {("body", "queue")} and "PROPETL_QUEUES" in reply.text
    monkeypatch.setenv("PROPETL_QUEUES", "nobody, gpu")
    reset_settings()
    try:
        reply = client.post("/api/jobs", headers=users["alice"], json={**TINY, "queue": "gpu"})
        assert reply.status_code == 201, reply.text
        client.post(f"/api/jobs/{reply.json()['id']}/cancel", headers=users["alice"])
    finally:
        monkeypatch.delenv("PROPETL_QUEUES")
        reset_settings()


# --- login throttling ----------------------------------------------------------------------


@pytest.fixture
def fresh_client(auth, monkeypatch):
    """Its own app, so its throttle starts empty."""
    from app.server import create_app

    with TestClient(create_app(replace(auth), ui=False)) as test_client:
        yield test_client


def test_wrong_passwords_for_one_user_are_throttled(fresh_client, caplog):
    caplog.set_level(logging.WARNING, logger="app.auth")
    codes = [
        fresh_client.post(
            "/api/auth/token", json={"username": "alice", "password": f"x{i}"}
        ).status_code
        for i in range(7)
    ]
    assert codes == [401] * 5 + [429] * 2
    reply = fresh_client.post(
        "/api/auth/token", json={"username": "alice", "password": PASSWORDS["alice"]}
    )
    assert reply.status_code == 429 and int(reply.headers["Retry-After"]) >= 1
    assert "too many failed logins for user 'alice'" in reply.json()["detail"]
    assert sum("failed login for user 'alice'" in r.getMessage() for r in caplog.records) == 5
    assert "x1" not in caplog.text  # never the password
    # bob, from the same address, is not locked out by alice's attempts
    assert (
        fresh_client.post(
            "/api/auth/token", json={"username": "bob", "password": "builder"}
        ).status_code
        == 200
    )


def test_one_address_trying_many_names_is_throttled(fresh_client):
    codes = [
        fresh_client.post(
            "/api/auth/token", json={"username": f"u{i}", "password": "x"}
        ).status_code
        for i in range(21)
    ]
    assert codes[:20] == [401] * 20 and codes[20] == 429


# --- list and detail agree --------------------------------------------------------------


def test_list_and_detail_give_the_same_best_metric(app, stack):
    with TestClient(app) as open_client:
        listed = {j["id"]: j for j in open_client.get("/api/jobs").json()}[stack.job_id]
        detail = open_client.get(f"/api/jobs/{stack.job_id}").json()
    assert detail["status"] == "succeeded" and detail["best_metric"] is not None
    assert listed["best_metric"] == detail["best_metric"]
    assert json.dumps(listed)  # plain JSON


def test_the_launch_form_names_every_bad_field(stack):
    """The dashboard's form reports every problem at once too (keep and the bottleneck)."""
    from app.auth import get_auth
    from app.ui import forms, launch
    from app.ui.common import Ctx

    values = forms.from_config(launch.SPECS, {"lr": -1, "propetl": {"keep": 0, "bottleneck": -1}})
    message, _, _ = launch.submit(
        Ctx(get_auth()), None, "bad", "", "tiny-bert", ["rotten_tomatoes"], values
    )
    assert message.startswith("**✗ Fix these"), message
    for where in ("config.lr", "config.propetl.keep", "config.propetl.bottleneck"):
        assert where in message, message

"""The dashboard keeps users apart like the REST API: a second user, logged in through
`gradio_client` and through the page's own event calls, reaches nothing of the first user's
(jobs, curves, logs, sweeps, prototypes, predictions, exports, uploads), and the page config
they are served holds none of it.

alice's work is made beforehand in the data dir; then a real `propetl serve` (login on, no
worker) is started and bob calls every endpoint `view_api()` lists and every event of the
page (by its index, as the browser does) with alice's ids, names and upload."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.dashboard_stack import reset_caches
from tests.services import free_port

REPO = Path(__file__).resolve().parents[2]
USERS = "alice:alice-PW-1,bob:bob-PW-2"
SECRET_CSV = "text,label\n" + "".join(
    f"private sentence {i},{'zebra_secret' if i % 2 else 'yak_secret'}\n" for i in range(40)
)


@pytest.fixture(scope="module")
def alices(tmp_path_factory):
    """alice's trained job and prototype, her queued sweep and her upload."""
    tmp = tmp_path_factory.mktemp("dash-access")
    with pytest.MonkeyPatch.context() as mp:
        for key in ("DATABASE_URL", "BROKER_URL", "AUTH_ENABLED", "USERS", "ADMINS"):
            mp.delenv(f"PROPETL_{key}", raising=False)
        mp.setenv("PROPETL_DATA_DIR", str(tmp / "data"))
        reset_caches()
        from app import uploads
        from app.registry import get_registry
        from worker.runner import execute

        registry = get_registry()
        source = tmp / "secret_reviews.csv"
        source.write_text(SECRET_CSV)
        upload = uploads.store("alice", source)
        job_id = registry.submit_job(
            {
                "name": "alice-secret-job",
                "owner": "alice",
                "config": {
                    "backbone": "tiny-bert",
                    "tasks": ["rotten_tomatoes", upload.name],
                    "max_examples": 16,
                    "max_steps": 2,
                    "batch_size": 8,
                },
            }
        )
        assert execute(job_id, registry=registry) == "succeeded", registry.get_job(job_id).error
        sweep_id = registry.create_sweep(
            {
                "name": "alice-secret-sweep",
                "owner": "alice",
                "grid": {"lr": [0.01, 0.02]},
                "base": {"config": {"backbone": "tiny-bert", "tasks": ["rotten_tomatoes"]}},
            }
        )
        uid = registry.prototype_for_job(job_id).uid
        reset_caches()
    return {
        "data_dir": tmp / "data",
        "job_id": job_id,
        "uid": uid,
        "sweep_id": sweep_id,
        "upload": upload.name,
        "secrets": [
            uid,
            uid[:8],
            "alice-secret-job",
            "alice-secret-sweep",
            "secret_reviews",
            "zebra_secret",
            "yak_secret",
        ],
    }


@pytest.fixture(scope="module")
def server(alices, tmp_path_factory):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROPETL_")}
    env.update(
        PROPETL_DATA_DIR=str(alices["data_dir"]),
        PROPETL_AUTH_ENABLED="true",
        PROPETL_USERS=USERS,
        PROPETL_SECRET_KEY="dash-access-KEY",
        PROPETL_LOGIN_MAX_FAILURES="3",
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        OMP_NUM_THREADS="1",
    )
    log = tmp_path_factory.mktemp("dash-server") / "server.log"
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("propetl")),
            "serve",
            "--no-worker",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=REPO,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                if httpx.get(f"{url}/api/auth/me", timeout=2).status_code == 401:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        yield url, log
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


@contextlib.contextmanager
def _session(url: str, user: str, password: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, timeout=60) as client:
        reply = client.post("/login", data={"username": user, "password": password})
        assert reply.status_code == 200, reply.text
        yield client


def _leaks(text: str, secrets: list[str], sent: object = "") -> list[str]:
    """Secrets of alice's in `text`, leaving out what the caller sent (an echo of his own
    request, "no prototype <uid>", tells him nothing)."""
    sent = json.dumps(sent, default=str)
    return [s for s in secrets if s in text and s not in sent]


def test_bobs_page_config_holds_nothing_of_alice(server, alices):
    url, _ = server
    with _session(url, "bob", "bob-PW-2") as bob:
        config = bob.get("/config")
        assert config.status_code == 200
        assert not _leaks(config.text, alices["secrets"])
    with _session(url, "alice", "alice-PW-1") as alice:  # the secrets are real: alice sees them
        reply = _run_event(alice, _dependency(alice, "focus", "launch-tasks"), [[]])
        assert alices["upload"] in reply


def test_gradio_client_endpoints_give_bob_nothing_of_alice(server, alices):
    from gradio_client import Client

    url, _ = server
    client = Client(url, auth=("bob", "bob-PW-2"), verbose=False, download_files=False)
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert endpoints, "the dashboard lists its client endpoints"
    values = [
        alices["uid"],
        alices["uid"][:8],
        alices["job_id"],
        alices["upload"],
        alices["sweep_id"],
    ]
    calls = 0
    for name, info in endpoints.items():
        params = info["parameters"]
        for value in values:
            args = {}
            for p in params:
                kind = json.dumps(p.get("python_type", {}))
                if p.get("parameter_has_default") and p["parameter_name"] not in (
                    "prototype",
                    "tasks",
                    "task",
                    "sweep",
                ):
                    continue
                args[p["parameter_name"]] = [value] if "list" in kind.lower() else value
            try:
                result = client.predict(api_name=name, **args)
            except Exception as err:  # refused: its message must not tell alice's work
                result = str(err)
            calls += 1
            assert not _leaks(json.dumps(result, default=str), alices["secrets"], args), (
                name,
                args,
                result,
            )
    assert calls >= 3 * len(values)


# --- every event of the page, as the browser calls it ------------------------------------


def _config(client: httpx.Client) -> dict:
    return client.get("/config").json()


def _dependency(client: httpx.Client, trigger: str, elem_id: str) -> int:
    """Index of the dependency fired by `trigger` whose outputs include `elem_id`."""
    config = _config(client)
    ids = {c["id"]: c.get("props", {}).get("elem_id") for c in config["components"]}
    for i, dep in enumerate(config["dependencies"]):
        if any(t[1] == trigger for t in dep.get("targets", [])) and any(
            ids.get(o) == elem_id for o in dep["outputs"]
        ):
            return i
    raise AssertionError(f"no {trigger} event drawing #{elem_id}")


def _run_event(client: httpx.Client, fn_index: int, data: list) -> str:
    """Run event `fn_index` through the queue like the page; the whole answer as text."""
    session = uuid.uuid4().hex[:10]
    joined = client.post(
        "/gradio_api/queue/join",
        json={
            "data": data,
            "event_data": None,
            "fn_index": fn_index,
            "trigger_id": None,
            "session_hash": session,
        },
    )
    if joined.status_code != 200:
        return joined.text
    text = []
    with client.stream(
        "GET", "/gradio_api/queue/data", params={"session_hash": session}, timeout=60
    ) as stream:
        for line in stream.iter_lines():
            text.append(line)
            if '"process_completed"' in line or '"close_stream"' in line:
                break
    return "\n".join(text)


def _pick(component: dict, alices: dict) -> object:
    """The identifier of alice's that an input of this kind names (by its label)."""
    label = str(component.get("props", {}).get("label") or "").lower()
    if "job" in label or "run" in label:
        return alices["job_id"]
    if "sweep" in label or "show" in label:
        return alices["sweep_id"]
    if "task" in label:
        return alices["upload"]
    return alices["uid"]


def _fill(component: dict, value: object) -> object:
    kind = component.get("type")
    props = component.get("props", {})
    if kind == "dropdown" and props.get("multiselect"):
        return [value]
    if kind in ("dataframe", "file", "plot", "image", "timer", "button", "html", "markdown"):
        return None
    if kind == "checkbox":
        return True
    if kind in ("number", "slider"):
        return value if isinstance(value, int) else 0
    if kind == "checkboxgroup":
        return []
    return value


def test_every_event_of_the_page_gives_bob_nothing_of_alice(server, alices):
    """One call per event, each input given the id of alice's that it names (a job picker
    her job id, a prototype picker her prototype's id, a task picker her upload's name)."""
    url, _ = server
    with _session(url, "bob", "bob-PW-2") as bob:
        config = _config(bob)
        components = {c["id"]: c for c in config["components"]}
        leaks, called = [], 0
        for fn_index, dep in enumerate(config["dependencies"]):
            if not dep.get("backend_fn", True):
                continue
            data = [
                _fill(components.get(i, {}), _pick(components.get(i, {}), alices))
                for i in dep["inputs"]
            ]
            answer = _run_event(bob, fn_index, data)
            called += 1
            found = _leaks(answer, alices["secrets"], data)
            if found:
                leaks.append((fn_index, dep.get("api_name"), data, found))
        assert called > 40
        assert not leaks, leaks


def test_dashboard_login_is_throttled(server):
    """The page's own login form: after 3 wrong passwords for a name (the server's limit
    here), even the right one is answered 429 for a while; failures are logged."""
    url, log = server
    with httpx.Client(base_url=url, timeout=30) as client:
        codes = [
            client.post("/login", data={"username": "carol", "password": f"w{i}"}).status_code
            for i in range(4)
        ]
        assert codes == [400, 400, 400, 429]
        reply = client.post("/login", data={"username": "carol", "password": "w0"})
        assert reply.status_code == 429 and int(reply.headers["retry-after"]) >= 1
        assert "too many failed logins for user 'carol'" in reply.json()["detail"]
    deadline = time.monotonic() + 10
    while "failed login for user 'carol'" not in log.read_text():
        assert time.monotonic() < deadline, log.read_text()[-2000:]
        time.sleep(0.2)

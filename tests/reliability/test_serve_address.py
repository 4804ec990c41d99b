"""`propetl serve` binds the address the settings give (PROPETL_WEB_HOST / PROPETL_WEB_PORT),
unless a flag overrides them; docker-compose's web service relies on it (it sets 0.0.0.0 so
that the published port reaches the server, and runs `propetl serve` without flags)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

from tests.services import free_port

REPO = Path(__file__).resolve().parents[2]
#: A loopback address other than 127.0.0.1: reachable only if the server bound it.
HOST = "127.0.0.2"


def _serve(tmp: Path, env_extra: dict[str, str], *flags: str) -> tuple[subprocess.Popen, Path]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROPETL_")}
    env.update(
        PROPETL_DATA_DIR=str(tmp / "data"),
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        OMP_NUM_THREADS="1",
        **env_extra,
    )
    log = tmp / "server.log"
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("propetl")),
            "serve",
            "--no-worker",
            "--log-level",
            "warning",
            *flags,
        ],
        cwd=REPO,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return proc, log


def _reachable(url: str, proc: subprocess.Popen, log: Path, timeout: float = 90) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                return reply.status == 200
        except OSError:
            time.sleep(0.3)
    return False


def test_serve_binds_the_address_of_the_settings(tmp_path):
    port = free_port()
    proc, log = _serve(tmp_path, {"PROPETL_WEB_HOST": HOST, "PROPETL_WEB_PORT": str(port)})
    try:
        assert _reachable(f"http://{HOST}:{port}/api/backbones", proc, log), log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def test_flags_override_the_settings(tmp_path, monkeypatch):
    """The command line wins (uvicorn is the boundary: what it is asked to bind)."""
    from click.testing import CliRunner

    from app import server
    from tests.dashboard_stack import reset_caches

    bound: list[tuple[str, int]] = []
    monkeypatch.setattr("uvicorn.run", lambda app, host, port, **kw: bound.append((host, port)))
    monkeypatch.setattr(server, "create_app", lambda *a, **kw: None)
    monkeypatch.setattr(server.signal, "signal", lambda *a: None)  # keep pytest's handlers
    monkeypatch.setenv("PROPETL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("PROPETL_WEB_HOST", HOST)
    monkeypatch.setenv("PROPETL_WEB_PORT", "7001")
    reset_caches()
    try:
        for flags, expected in (
            ([], (HOST, 7001)),
            (["--port", "7002"], (HOST, 7002)),
            (["--host", "127.0.0.3", "--port", "7003"], ("127.0.0.3", 7003)),
        ):
            done = CliRunner().invoke(server.serve, ["--no-worker", *flags])
            assert done.exit_code == 0, done.output
            assert bound[-1] == expected
    finally:
        monkeypatch.undo()
        reset_caches()


def test_compose_web_service_is_reachable_through_its_published_port():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    web = compose["services"]["web"]
    env = web["environment"]
    command = web["command"]
    assert env["PROPETL_WEB_HOST"] == "0.0.0.0"  # not the container's loopback
    assert "--host" not in command and "--port" not in command  # the settings decide
    port = str(env["PROPETL_WEB_PORT"])
    assert any(str(p).endswith(f":{port}") for p in web["ports"]), web["ports"]
    assert f":{port}/" in " ".join(web["healthcheck"]["test"])

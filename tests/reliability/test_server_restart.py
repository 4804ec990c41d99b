"""The web server killed (SIGKILL) and started again while a job runs.

The job's worker runs in a session of its own, so it carries on; the new server reads the
live state from the registry: the API and the Jobs page show the job running, then done,
and nothing submitted is lost.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from pathlib import Path

import httpx
import pytest

from bench.load import SUBMIT, Server, free_port
from tests.worker.conftest import FAST

from .conftest import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]
CHROMIUM = Path("/usr/bin/chromium")
LONG = {
    "name": "survives the server",
    "config": {
        "backbone": "tiny-bert",
        "tasks": ["bbc_news"],
        "max_examples": 64,
        "max_steps": 80,
        "batch_size": 16,
        "max_length": 128,
        "eval_every": 40,
        "save_every": 10,
    },
}


def _get(server: Server, path: str) -> dict:
    reply = httpx.get(f"{server.url}{path}", timeout=10)
    reply.raise_for_status()
    return reply.json()


def test_server_restart_while_jobs_run(tmp_path):
    server = Server(tmp_path / "data", free_port(), worker=True, **FAST).start()
    worker_pid = None
    try:
        job = httpx.post(f"{server.url}/api/jobs", json=LONG, timeout=30).json()
        waiting = [
            httpx.post(
                f"{server.url}/api/jobs", json={**SUBMIT, "name": f"next-{i}"}, timeout=30
            ).json()["id"]
            for i in range(2)
        ]
        wait_for(
            lambda: _get(server, f"/api/jobs/{job['id']}")["step"] >= 10,
            120,
            "the job to pass step 10",
        )
        worker_pid = int(re.search(r"embedded worker pid (\d+)", server.log.read_text())[1])
        server.stop(signal.SIGKILL)
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{server.url}/api/jobs", timeout=2)
        time.sleep(2)
        server.start()
        seen = _get(server, f"/api/jobs/{job['id']}")
        assert seen["status"] in ("running", "succeeded"), seen
        if CHROMIUM.exists():
            _jobs_page_shows(server.url, LONG["name"])
        for job_id in [job["id"], *waiting]:
            done = wait_for(
                lambda i=job_id: (
                    (j := _get(server, f"/api/jobs/{i}"))["status"]
                    in ("succeeded", "failed", "cancelled")
                    and j
                ),
                180,
                f"job {job_id}",
            )
            assert done["status"] == "succeeded", done.get("error")
        listed = _get(server, "/api/jobs")
        assert sorted(j["id"] for j in listed) == sorted([job["id"], *waiting])
        protos = _get(server, "/api/prototypes")
        assert sorted(p["job_id"] for p in protos) == sorted([job["id"], *waiting])
    finally:
        server.stop(signal.SIGTERM)
        if worker_pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(worker_pid, signal.SIGKILL)


def _jobs_page_shows(url: str, name: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu", "--no-first-run"]
        )
        try:
            page = browser.new_page()
            page.set_default_timeout(60_000)
            page.goto(url)
            page.get_by_role("tab", name=re.compile("Jobs")).click()
            table = page.locator("#jobs-table")
            expect(table).to_contain_text(name)
            expect(table).to_contain_text(re.compile("running|succeeded"))
        finally:
            browser.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text() if Path(f"/proc/{pid}/stat").exists() else ""
    return ") Z " not in stat  # a zombie has exited


def test_stopping_the_server_stops_its_embedded_worker(tmp_path):
    """`kill <server>` (SIGTERM, as docker stop and systemd send) leaves no worker behind."""
    server = Server(tmp_path / "data", free_port(), worker=True, **FAST).start()
    worker_pid = int(re.search(r"embedded worker pid (\d+)", server.log.read_text())[1])
    try:
        assert _alive(worker_pid)
        server.stop(signal.SIGTERM)
        assert server.proc is not None and server.proc.returncode != -signal.SIGKILL
        wait_for(lambda: not _alive(worker_pid), 30, "the embedded worker to stop")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker_pid, signal.SIGKILL)


def test_a_killed_server_leaves_no_embedded_worker_behind(tmp_path):
    """SIGKILL gives the server no chance to stop its worker: the worker notices (Linux's
    parent-death signal, else its watchdog of PROPETL_PARENT_PID) and stops by itself."""
    server = Server(tmp_path / "data", free_port(), worker=True, **FAST).start()
    worker_pid = int(re.search(r"embedded worker pid (\d+)", server.log.read_text())[1])
    try:
        assert _alive(worker_pid)
        server.stop(signal.SIGKILL)
        wait_for(lambda: not _alive(worker_pid), 15, "the orphaned embedded worker to stop")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker_pid, signal.SIGKILL)

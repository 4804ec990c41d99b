"""Launch's "add tasks to a prototype" in Chromium, through the real server and worker: the
method fields come from the prototype, the estimate counts only added bytes, the job adds a
task to the prototype and the registry lists both tasks in order."""

from __future__ import annotations

import json
import re
import time
import urllib.request

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.timeout(420)]


def _api(server: str, path: str, body: dict | None = None) -> object:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        server + path, data=data, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as reply:
        return json.loads(reply.read())


def _trained_prototype(server: str) -> str:
    job = _api(
        server,
        "/api/jobs",
        {
            "name": "grow-base",
            "config": {
                "backbone": "tiny-bert",
                "tasks": ["bbc_news"],
                "max_examples": 16,
                "max_steps": 2,
                "batch_size": 8,
                "eval_every": 2,
                "propetl": {"keep": 0.3, "bottleneck": 8},
            },
        },
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        state = _api(server, f"/api/jobs/{job['id']}")
        if state["status"] in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(1)
    assert state["status"] == "succeeded", state
    protos = [p for p in _api(server, "/api/prototypes") if p.get("job_id") == job["id"]]
    return protos[0]["uid"]


def test_launch_adds_a_task_to_a_prototype(browser, server):
    uid = _trained_prototype(server)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        page.goto(server)
        page.wait_for_selector("#launch-submit")
        page.locator("#launch-mode").get_by_text("add tasks to a prototype").click()
        page.locator("#launch-base input").first.click()
        page.get_by_role("option", name=re.compile(uid[:8])).first.click()
        page.keyboard.press("Escape")
        expect(page.locator("#launch-base-info")).to_contain_text("bbc_news")
        expect(page.locator("#launch-base-info")).to_contain_text("read-only")
        expect(page.locator("#launch-backbone input")).to_have_value("tiny-bert")
        expect(page.locator("#launch-estimate")).to_contain_text("Added storage only")
        for elem_id, value in (
            ("opt-max-examples", "16"),
            ("opt-max-steps", "2"),
            ("opt-batch-size", "8"),
            ("opt-eval-every", "2"),
        ):
            box = page.locator(f"#{elem_id} input, #{elem_id} textarea").first
            box.fill(value)
            box.press("Tab")
        page.locator("#launch-submit").click()  # the tasks field holds rotten_tomatoes
        expect(page.locator("#launch-status")).to_contain_text("queued", timeout=30_000)
        expect(page.locator("#job-head")).to_contain_text("succeeded", timeout=180_000)
    finally:
        context.close()
    tasks = _api(server, f"/api/prototypes/{uid}/tasks")
    assert [t["task"] for t in tasks] == ["bbc_news", "rotten_tomatoes"]
    assert tasks[1]["job_id"] != tasks[0]["job_id"] and tasks[1]["mask_bytes"] > 0

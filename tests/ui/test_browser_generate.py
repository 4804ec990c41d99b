"""The Playground streams generated text for a tiny generative prototype, in Chromium.

A tiny Llama job is queued through the REST API and run by the server's real worker; the
page then picks its prototype, generates a headline and switches to the other task.
"""

from __future__ import annotations

import json
import time
import urllib.request

import pytest
from playwright.sync_api import expect

from tests.dashboard_stack import TINY_GENERATIVE

from .test_browser import choose, tab

pytestmark = [pytest.mark.browser, pytest.mark.timeout(400)]


def _call(url: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as reply:
        return json.loads(reply.read())


@pytest.fixture(scope="module")
def generative_uid(server):
    job = _call(f"{server}/api/jobs", {"name": "tiny generative", "config": TINY_GENERATIVE})
    deadline = time.monotonic() + 240
    while True:
        detail = _call(f"{server}/api/jobs/{job['id']}")
        if detail["status"] in ("succeeded", "failed", "cancelled"):
            break
        assert time.monotonic() < deadline, f"job still {detail['status']}"
        time.sleep(1)
    assert detail["status"] == "succeeded", detail
    return detail["prototype"]


def test_playground_streams_generated_text_and_swaps_task(browser, server, generative_uid):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        page.goto(server)
        page.wait_for_selector("#launch-submit")
        tab(page, "Playground")
        page.get_by_role("button", name="↻ Refresh").click()
        page.locator("#play-proto input").first.click()
        page.get_by_role("option").filter(has_text=generative_uid[:8]).first.click()
        page.keyboard.press("Escape")
        expect(page.locator("#play-task input")).to_have_value("bbc_headlines", timeout=30_000)
        page.locator("#play-text textarea").fill("Oil prices fell sharply on Monday.")
        page.locator("#play-go").click()
        expect(page.locator("#play-timing")).to_contain_text("done", timeout=60_000)
        expect(page.locator("#play-timing")).to_contain_text("tokens/s")
        expect(page.locator("#play-out .pp-task")).to_have_text("bbc_headlines")
        expect(page.locator("#play-out .pp-generated")).to_have_count(1)
        choose(page, "play-task", "rotten_tomatoes")
        expect(page.locator("#play-out .pp-task")).to_have_text("rotten_tomatoes", timeout=60_000)
        expect(page.locator("#play-timing")).to_contain_text("done", timeout=60_000)
    finally:
        context.close()

"""A sweep in Chromium against the real server and its worker: launch a keep-ratio grid from
the Launch tab, watch its jobs succeed in the Sweeps tab with both plots drawn, filter Jobs."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from .shots import shoot
from .test_browser import fill_number, tab

pytestmark = pytest.mark.browser


def _image_drawn(page: Page, elem_id: str) -> bool:
    return page.locator(f"#{elem_id} img").first.evaluate(
        "img => img.complete && img.naturalWidth > 100 && img.naturalHeight > 100"
    )


def test_sweep_from_launch_to_plots(page: Page):
    page.reload()
    page.wait_for_selector("#launch-submit")
    backbone = page.locator("#launch-backbone input")
    backbone.fill("tiny-bert")
    backbone.press("Enter")
    fill_number(page, "opt-max-examples", "16")
    fill_number(page, "opt-max-steps", "4")
    fill_number(page, "opt-batch-size", "8")
    fill_number(page, "opt-eval-every", "2")
    page.get_by_text("Sweep: one job per combination of values").click()
    values = page.locator("#sweep-values-1 textarea, #sweep-values-1 input").first
    # the accordion's fields are drawn on its first opening: fill them once the default is in
    expect(values).to_have_value(re.compile(r"0\.05"), timeout=10_000)
    values.fill("0.1, 0.5")
    values.press("Tab")
    expect(values).to_have_value("0.1, 0.5")
    page.locator("#launch-sweep-submit").click()
    expect(page.locator("#launch-sweep-status")).to_contain_text("2 jobs", timeout=30_000)
    status = page.locator("#launch-sweep-status").inner_text()
    sweep_id = re.search(r"#(\d+)", status).group(1)

    expect(page.locator("#sweep-summary")).to_contain_text("keep", timeout=30_000)
    table = page.locator("#sweep-table")
    expect(table).to_contain_text("keep=0.1")
    expect(table).to_contain_text("keep=0.5")
    expect(page.locator("#sweep-summary")).to_contain_text("2 jobs (2 succeeded)", timeout=240_000)
    for plot in ("sweep-metric", "sweep-pareto"):
        expect(page.locator(f"#{plot} img")).to_be_visible(timeout=30_000)
    page.wait_for_timeout(3500)  # one more refresh: the plots of the finished sweep
    assert _image_drawn(page, "sweep-metric") and _image_drawn(page, "sweep-pareto")
    shoot(page, "5-sweep")

    outside = {
        "name": "outside the sweep",
        "queue": "nowhere",
        "config": {"backbone": "tiny-bert", "tasks": ["rotten_tomatoes"]},
    }
    reply = page.request.post(page.url.split("?")[0].rstrip("/") + "/api/jobs", data=outside)
    assert reply.status == 201, reply.text()
    tab(page, "Jobs")
    expect(page.locator("#jobs-table")).to_contain_text("outside the sweep", timeout=30_000)
    page.locator("#jobs-sweep-filter input").first.click()
    page.get_by_role("option", name=re.compile(rf"sweep #{sweep_id} ")).first.click()
    page.keyboard.press("Escape")
    jobs = page.locator("#jobs-table")
    expect(jobs).to_contain_text("sweep · keep=0.1", timeout=30_000)
    expect(jobs).to_contain_text("sweep · keep=0.5")
    expect(jobs).not_to_contain_text("outside the sweep")
    shoot(page, "6-jobs-by-sweep")

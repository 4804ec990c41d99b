"""The dashboard in Chromium against the real server and a real worker, on tiny-bert.

The tests run in order and share one page: launch -> watch it succeed -> masks -> playground.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from .shots import shoot

pytestmark = pytest.mark.browser


def choose(page: Page, elem_id: str, option: str) -> None:
    page.locator(f"#{elem_id} input").first.click()
    page.get_by_role("option", name=option, exact=True).first.click()
    page.keyboard.press("Escape")


def fill_number(page: Page, elem_id: str, value: str) -> None:
    box = page.locator(f"#{elem_id} input, #{elem_id} textarea").first
    box.fill(value)
    box.press("Tab")


def tab(page: Page, name: str) -> None:
    page.get_by_role("tab", name=re.compile(name)).click()


def test_launch_a_job(page: Page):
    backbone = page.locator("#launch-backbone input")
    backbone.fill("tiny-bert")
    backbone.press("Enter")
    choose(page, "launch-tasks", "bbc_news")
    expect(page.locator("#launch-tasks")).to_contain_text("bbc_news")  # the pick stands
    fill_number(page, "opt-max-examples", "16")
    fill_number(page, "opt-max-steps", "6")
    fill_number(page, "opt-batch-size", "8")
    fill_number(page, "opt-eval-every", "2")
    expect(page.locator("#launch-estimate")).to_contain_text("2 tasks", timeout=30_000)
    shoot(page, "1-launch")
    page.locator("#launch-submit").click()
    expect(page.locator("#launch-status")).to_contain_text("queued", timeout=30_000)
    expect(page.locator("#job-head")).to_contain_text("tiny-bert", timeout=30_000)


def test_job_succeeds_with_curves(page: Page):
    expect(page.locator("#job-head")).to_contain_text("succeeded", timeout=150_000)
    expect(page.locator("#job-loss img")).to_be_visible(timeout=30_000)
    expect(page.locator("#job-dev img")).to_be_visible()
    expect(page.locator("#jobs-table")).to_contain_text("succeeded")
    expect(page.locator("#job-log textarea")).to_have_value(re.compile("train  loss"))
    page.wait_for_timeout(2500)  # one more refresh, so the table and plots are settled
    shoot(page, "2-jobs")


def test_masks_heatmaps(page: Page):
    tab(page, "Masks")
    expect(page.locator("#masks-note")).to_contain_text("adapter.down", timeout=60_000)
    expect(page.locator("#masks-hamming img")).to_be_visible(timeout=30_000)
    expect(page.locator("#masks-jaccard img")).to_be_visible()
    shoot(page, "3-masks")


def test_playground_predicts_and_switches_task(page: Page):
    tab(page, "Playground")
    expect(page.locator("#play-task input")).to_have_value(re.compile(r"\w"), timeout=30_000)
    page.locator("#play-text textarea").fill("the striker scored twice in the final")
    choose(page, "play-task", "rotten_tomatoes")
    page.locator("#play-go").click()
    expect(page.locator("#play-out")).to_contain_text("rotten_tomatoes", timeout=60_000)
    expect(page.locator("#play-timing")).to_contain_text("Mask swap")
    choose(page, "play-task", "bbc_news")
    expect(page.locator("#play-out .pp-task")).to_have_text("bbc_news", timeout=30_000)
    choose(page, "play-task", "all tasks")
    expect(page.locator("#play-out .pp-result")).to_have_count(2, timeout=30_000)
    expect(page.locator("#play-timing")).to_contain_text("mixed batch")
    shoot(page, "4-playground")

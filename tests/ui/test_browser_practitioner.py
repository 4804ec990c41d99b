"""What a practitioner sees in Chromium (issue 15): an upload trained beside a bundled task,
the run page of the finished job, clone, a fresh page load, and no request leaving the host.

One page of its own over the shared server (`server` fixture) and its real worker; the tests
run in order. Screenshots go to tests/screenshots/ and to the test's own output folder.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from urllib.parse import urlparse

import pytest
from playwright.sync_api import Page, expect

from .shots import shoot
from .test_browser import choose, fill_number, tab

pytestmark = pytest.mark.browser

UPLOAD_ROWS = 40


@pytest.fixture(scope="module")
def outside() -> list[str]:
    return []


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("practitioner-shots")


@pytest.fixture(scope="module")
def upage(browser, server, outside):
    """A page of its own that records every request to another host."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    host = urlparse(server).netloc

    def record(request) -> None:
        where = urlparse(request.url)
        if where.scheme in ("http", "https", "ws", "wss") and where.netloc != host:
            outside.append(request.url)

    context.on("request", record)
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(server)
    page.wait_for_selector("#launch-submit")
    yield page
    context.close()


def snap(page: Page, out_dir: Path, name: str) -> None:
    path = shoot(page, name)
    shutil.copy(path, out_dir / path.name)


def no_error_toasts(page: Page) -> None:
    page.wait_for_timeout(1500)  # a handler's error arrives a moment after the click
    errors = page.locator("[data-testid='toast-body'].error")
    texts = [errors.nth(i).inner_text() for i in range(errors.count())]
    assert not texts, f"error toasts on the page: {texts}"


def visible(page: Page, elem_id: str) -> bool:
    return page.locator(f"#{elem_id}").first.is_visible()


def test_page_loads_nothing_from_other_hosts(upage: Page, outside: list[str], out_dir: Path):
    upage.wait_for_timeout(1000)
    assert not outside, f"the page fetched from other hosts: {outside}"
    snap(upage, out_dir, "p1-launch")


def test_launch_form_labels_and_method_fields(upage: Page, out_dir: Path):
    upage.get_by_text("Advanced", exact=True).click()
    seeds = [
        upage.locator(f"#{elem} label, #{elem} .label-text, #{elem} span")
        .first.inner_text()
        .strip()
        for elem in ("opt-seed", "opt-propetl-seed")
    ]
    assert seeds[0] != seeds[1], f"two seed fields with one label: {seeds}"
    # adapter (the default) shows the bottleneck, not LoRA's or prefix's sizes
    assert visible(upage, "opt-propetl-bottleneck")
    for field in ("opt-propetl-lora-r", "opt-propetl-lora-alpha", "opt-propetl-prefix-len"):
        assert not visible(upage, field), f"{field} is shown for the adapter method"
    choose(upage, "opt-propetl-petl", "lora")
    expect(upage.locator("#opt-propetl-lora-r")).to_be_visible()
    expect(upage.locator("#opt-propetl-bottleneck")).to_be_hidden()
    choose(upage, "opt-propetl-petl", "adapter")
    expect(upage.locator("#opt-propetl-bottleneck")).to_be_visible()
    # the preview shows the selected task's rows, not "Choose a task"
    upage.get_by_text("Preview a task's data").click()
    expect(upage.locator("#launch-preview-info")).to_contain_text("training examples")
    # its dataset card, and a warning when max length cuts many texts
    card = upage.locator("#launch-card")
    expect(card).to_contain_text("Majority-class baseline", timeout=60_000)
    expect(card).to_contain_text("content sha256")
    expect(card).to_contain_text("cut at max length")
    fill_number(upage, "opt-max-length", "16")
    expect(upage.locator("#launch-cut-warning")).to_contain_text("cuts many", timeout=60_000)
    snap(upage, out_dir, "p2-launch-form")
    fill_number(upage, "opt-max-length", "128")
    expect(upage.locator("#launch-cut-warning")).not_to_contain_text("cuts", timeout=60_000)
    no_error_toasts(upage)


def test_upload_a_csv_is_added_with_its_sizes(upage: Page, out_dir: Path, tmp_path: Path):
    rows = [
        f'"{"a fine, warm story" if i % 2 else "a dull, boring plot"} number {i}",'
        f"{'good' if i % 2 else 'bad'}"
        for i in range(UPLOAD_ROWS)
    ]
    data = tmp_path / "debates.csv"
    data.write_text("text,label\n" + "\n".join(rows) + "\n")
    upage.get_by_text("Add your own task").click()
    upage.locator("#launch-upload input[type=file]").set_input_files(str(data))
    expect(upage.locator("#launch-upload-msg")).to_contain_text("ready", timeout=30_000)
    no_error_toasts(upage)
    table = upage.locator("#launch-tasks-table")
    expect(table).to_contain_text("debates")
    expect(table).to_contain_text("32 / 4 / 4")
    expect(table).not_to_contain_text("(your file)")
    expect(upage.locator("#launch-preview-info")).to_contain_text("32 training examples")
    expect(upage.locator("#launch-preview-rows")).to_contain_text("number")
    snap(upage, out_dir, "p3-upload")


def test_job_with_the_upload_has_a_run_page(upage: Page, out_dir: Path):
    backbone = upage.locator("#launch-backbone input")
    backbone.fill("tiny-bert")
    backbone.press("Enter")
    fill_number(upage, "opt-max-examples", "16")
    fill_number(upage, "opt-max-steps", "4")
    fill_number(upage, "opt-batch-size", "8")
    fill_number(upage, "opt-eval-every", "2")
    upage.locator("#launch-submit").click()
    expect(upage.locator("#launch-status")).to_contain_text("queued", timeout=30_000)
    expect(upage.locator("#job-head")).to_contain_text("succeeded", timeout=180_000)
    expect(upage.locator("#job-head")).to_contain_text(re.compile(r"ran \d+"))  # duration
    run = upage.locator("#job-run")
    expect(run).to_contain_text("Test", timeout=30_000)
    expect(run).to_contain_text("rotten_tomatoes")
    expect(run).to_contain_text("debates")
    expect(run).to_contain_text("wall time")
    expect(run).to_contain_text("samples/s")
    expect(run).to_contain_text("kept step")
    expect(run).to_contain_text("majority")
    expect(run).to_contain_text("Confusion")
    expect(run).to_contain_text("Worst misclassified")
    log = upage.locator("#job-log textarea").input_value()
    assert log.splitlines()[0].split()[2] in ("done", "test"), (
        f"the log does not start with the latest event:\n{log[:300]}"
    )
    expect(upage.locator("#job-loss img")).to_be_visible()
    upage.wait_for_timeout(2500)
    snap(upage, out_dir, "p4-run-page")
    no_error_toasts(upage)


def test_tags_note_search_and_csv(upage: Page, out_dir: Path):
    upage.locator("#job-tags input, #job-tags textarea").first.fill("practitioner, upload")
    upage.locator("#job-note textarea").first.fill("debates trained beside rotten_tomatoes")
    upage.locator("#job-save-notes").click()
    expect(upage.locator("#job-notes-msg")).to_contain_text("practitioner, upload")
    search = upage.locator("#jobs-search input, #jobs-search textarea").first
    search.fill("tag:practitioner task:debates")
    search.press("Enter")
    table = upage.locator("#jobs-table")
    expect(table).to_contain_text("debates", timeout=30_000)
    expect(table.locator("tbody tr")).to_have_count(1, timeout=30_000)
    search.fill("tag:nothing-like-this")
    search.press("Enter")
    expect(upage.locator("#jobs-table tbody")).not_to_contain_text("debates", timeout=30_000)
    search.fill("")
    search.press("Enter")
    upage.locator("#job-csv").click()
    expect(upage.locator("#job-notes-msg")).to_contain_text("metrics.csv is ready")
    expect(upage.locator("#job-csv-file")).to_contain_text(re.compile(r"metrics\s*\.csv"))
    snap(upage, out_dir, "p4b-tags-search-csv")
    no_error_toasts(upage)


def test_clone_keeps_the_uploaded_task(upage: Page, out_dir: Path):
    upage.get_by_role("button", name="Clone into Launch").click()
    expect(upage.locator("#launch-status")).to_be_visible(timeout=30_000)
    no_error_toasts(upage)
    tasks = upage.locator("#launch-tasks")
    expect(tasks).to_contain_text("debates")
    expect(tasks).to_contain_text("rotten_tomatoes")
    snap(upage, out_dir, "p5-clone")


def test_fresh_page_shows_the_prototype(upage: Page, out_dir: Path):
    upage.reload()
    upage.wait_for_selector("#launch-submit")
    tab(upage, "Masks")
    # no untitled blank charts: they are drawn together once a prototype is picked
    expect(upage.locator("#masks-note")).to_contain_text("adapter.down", timeout=60_000)
    expect(upage.locator("#masks-charts img")).to_have_count(7, timeout=60_000)
    snap(upage, out_dir, "p6-masks")
    tab(upage, "Models")
    expect(upage.locator("#models-empty")).to_be_hidden()
    upage.locator("#models-proto input").first.click()
    upage.get_by_role("option", name=re.compile("rotten_tomatoes, debates")).first.click()
    upage.keyboard.press("Escape")
    expect(upage.locator("#models-export-format input[value=propetl]")).to_be_checked(
        timeout=30_000
    )
    upage.locator("#models-export").click()
    expect(upage.locator("#models-message")).to_contain_text("ready", timeout=60_000)
    snap(upage, out_dir, "p7-models")
    tab(upage, "Playground")
    expect(upage.locator("#play-out")).not_to_contain_text("No trained prototypes")
    no_error_toasts(upage)
    snap(upage, out_dir, "p8-playground")

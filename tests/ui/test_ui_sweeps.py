"""The sweep functions of the tabs (Launch, Jobs, Sweeps) and task exports in the Models tab."""

from __future__ import annotations

import zipfile

import pytest
from matplotlib.figure import Figure


@pytest.fixture(scope="module")
def ctx(stack):
    from app.auth import get_auth
    from app.ui.common import Ctx

    return Ctx(get_auth())


def _values(**overrides):
    from app.ui import launch

    keys = [s.key for s in launch.SPECS]
    values = [s.default for s in launch.SPECS]
    for key, value in overrides.items():
        values[keys.index(key)] = value
    return values


@pytest.fixture(scope="module")
def sweep_id(ctx, stack):
    """A petl sweep launched from the Launch tab; its two jobs run in this process."""
    from app.ui import launch
    from worker.runner import execute

    values = _values(max_examples="16", max_steps="4", batch_size=8, eval_every="2")
    message, tabs, picker = launch.submit_sweep(
        ctx,
        None,
        "ui sweep",
        "",
        "tiny-bert",
        ["rotten_tomatoes"],
        values,
        [("propetl.petl", "adapter, lora"), (None, "")],
    )
    assert "2 jobs" in message and tabs.selected == "sweeps", message
    sweep = stack.registry.get_sweep(picker["value"])
    for job in sweep.jobs:
        assert execute(job.id, registry=stack.registry) == "succeeded"
    return sweep.id


def test_launch_refuses_a_bad_sweep_naming_the_problem(ctx, stack):
    from app.ui import launch

    before = len(stack.registry.list_sweeps())
    message, _, _ = launch.submit_sweep(
        ctx,
        None,
        "bad",
        "",
        "tiny-bert",
        ["rotten_tomatoes"],
        _values(),
        [("propetl.keep", "0.1, 3"), ("lr", "0.1, 0.2")],
    )
    assert "keep must be in [1e-06, 1], got 3" in message
    message, _, _ = launch.submit_sweep(
        ctx,
        None,
        "bad",
        "",
        "tiny-bert",
        ["rotten_tomatoes"],
        _values(),
        [("propetl.keep", ""), (None, "")],
    )
    assert "give at least one value" in message
    assert len(stack.registry.list_sweeps()) == before
    assert ("Tasks (one per job)", "tasks") in launch.sweep_field_choices()


def test_sweep_page_draws_both_plots(sweep_id):
    from app.ui import sweeps

    assert sweep_id in [i for _, i in sweeps.sweep_choices()]
    visible, summary, table, metric, pareto, key = sweeps.sweep_page(sweep_id, "")
    assert visible["visible"] and "**petl** ∈ {adapter, lora}" in summary
    assert sorted(table["Values"]) == ["petl=adapter", "petl=lora"]
    assert all(table["Test"]) and all(table["Stored bytes (masks)"])
    assert isinstance(metric, Figure) and isinstance(pareto, Figure)
    [axis] = metric.axes
    assert [len(line.get_xdata()) for line in axis.get_lines()] == [2]
    [axis] = pareto.axes
    labels = axis.get_legend_handles_labels()[1]
    assert "Pareto front" in labels
    assert any(label.startswith("PEFT LoRA r8 (") for label in labels)  # pareto or accuracy
    again = sweeps.sweep_page(sweep_id, key)
    assert again[-1] == key  # nothing changed: the plots are not redrawn
    assert not sweeps.sweep_page(None, "")[0]["visible"]


def test_jobs_tab_groups_by_sweep(sweep_id, stack):
    from app.ui import jobs

    frame = jobs.jobs_frame(sweep=sweep_id)
    assert len(frame) == 2 and set(frame["Sweep"]) == {f"#{sweep_id}"}
    assert stack.job_id not in list(frame["ID"])
    assert stack.job_id in list(jobs.jobs_frame()["ID"])
    assert (f"sweep #{sweep_id} · ui sweep", sweep_id) in jobs.sweep_filter_choices()


def test_models_tab_exports_a_task(sweep_id, stack):
    from app.ui import models

    sweep = stack.registry.get_sweep(sweep_id)
    lora = next(j for j in sweep.jobs if j.spec["config"]["propetl"]["petl"] == "lora")
    path, message = models.export(lora.prototype.uid, "rotten_tomatoes", "peft")
    assert "ready" in message
    names = zipfile.ZipFile(path).namelist()
    assert any(n.endswith("adapter_config.json") for n in names)
    assert any(n.endswith("adapter_model.safetensors") for n in names)
    path, message = models.export(stack.uid, "bbc_news", "merged")
    assert path is None and "only LoRA tasks" in message
    path, message = models.export(stack.uid, "bbc_news", "propetl")
    assert path.endswith(".zip")


def test_pareto_front():
    from app.plots import pareto_front

    points = [(100, 0.7), (50, 0.6), (200, 0.65), (50, 0.5), (400, 0.9), (400, 0.8)]
    assert pareto_front(points) == [1, 0, 4]
    assert pareto_front([]) == []

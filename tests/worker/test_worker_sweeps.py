"""A sweep from the command line, run end to end by a real worker process."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from app import views
from app.cli import cli

pytestmark = [pytest.mark.services, pytest.mark.timeout(300)]


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_cli_sweep_runs_on_a_worker_and_reports_per_task_results(embedded_stack, tmp_path):
    stack = embedded_stack
    spec = tmp_path / "base.yaml"
    spec.write_text(
        f"queue: {stack.queue}\nconfig:\n  backbone: tiny-bert\n"
        "  tasks: [rotten_tomatoes, bbc_news]\n  max_examples: 16\n"
        "  max_steps: 4\n  batch_size: 8\n  eval_every: 2\n"
    )
    code, out = _run("jobs", "sweep", str(spec), "--grid", "keep=0.1,0.5,1.0", "--name", "keep")
    assert code == 0, out
    assert out.startswith("sweep ") and "3 jobs queued" in out
    sweep_id = int(out.split()[1].rstrip(":"))
    code, out = _run("jobs", "sweep", str(spec), "--grid", "keep=0.1,9")
    assert code != 0 and "keep must be in [1e-06, 1], got 9" in out
    stack.start_worker()
    registry = stack.registry
    sweep = registry.get_sweep(sweep_id)
    for job in sweep.jobs:
        assert stack.wait_final(job.id, timeout=120).status == "succeeded", stack.tail()
    code, out = _run("jobs", "list", "--sweep", str(sweep_id), "--json")
    assert code == 0 and out.count('"status": "succeeded"') == 3
    assert len(registry.list_sweeps()) == 1  # the refused sweep wrote nothing

    detail = views.sweep_detail(registry.get_sweep(sweep_id))
    rows = detail["results"]
    assert sorted((r["values"]["propetl.keep"], r["task"]) for r in rows) == sorted(
        (k, t) for k in (0.1, 0.5, 1.0) for t in ("rotten_tomatoes", "bbc_news")
    )
    assert all(r["test"] is not None and r["stored_bytes"] > 0 for r in rows)
    lines, points = views.sweep_plot_data(rows, detail["grid"])
    assert [x for x, _ in lines["bbc_news"][""]] == [0.1, 0.5, 1.0]
    assert len(points["rotten_tomatoes"]) == 3
    # each job trained with its own keep ratio: the masks it registered keep that fraction
    densities = {
        j.spec["config"]["propetl"]["keep"]: j.prototype.mask_sets[0].density
        for j in registry.get_sweep(sweep_id).jobs
    }
    for keep, density in densities.items():
        assert all(abs(d - keep) < 0.05 for d in density), (keep, density)

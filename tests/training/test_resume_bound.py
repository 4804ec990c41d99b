"""Resuming a finished run never trains past the planned steps (the same `propetl train`
command run again after it finished took one more step each time: 4/4, 5/4, ...).

40 examples in batches of 8 make 5 batches an epoch, so step 4 falls inside an epoch: that
is where the Trainer's resume took an extra step."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner


def _train(run_dir: Path) -> dict:
    from propetl.cli import cli

    args = [
        "train",
        "--backbone",
        "tiny-bert",
        "--tasks",
        "rotten_tomatoes",
        "--max-steps",
        "4",
        "--max-examples",
        "40",
        "--batch-size",
        "8",
        "--eval-every",
        "2",
        "--run-dir",
        str(run_dir),
    ]
    done = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert done.exit_code == 0, done.output[-3000:]
    return json.loads((run_dir / "result.json").read_text())


def test_the_same_command_three_times_ends_at_the_planned_steps(tmp_path):
    run_dir = tmp_path / "run"
    results = [_train(run_dir) for _ in range(3)]
    assert [(r["steps"], r["total_steps"]) for r in results] == [(4, 4)] * 3
    steps = [
        json.loads(line).get("step")
        for line in (run_dir / "metrics.jsonl").read_text().splitlines()
    ]
    assert max(s for s in steps if s is not None) == 4
    checkpoints = sorted(p.name for p in (run_dir / "checkpoints").glob("checkpoint-*"))
    assert checkpoints[-1] == "checkpoint-4", checkpoints

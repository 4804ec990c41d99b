"""The product's commands: jobs, db and worker (which hands over to Celery's command line)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from app.cli import cli

REPO = Path(__file__).resolve().parents[2]
GOOD = "name: cli\nqueue: nowhere\nconfig:\n  backbone: tiny-bert\n  tasks: [rotten_tomatoes]\n  max_steps: 2\n"


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_db_commands(embedded_stack):
    from app.db import head_revision

    head = head_revision()
    assert _run("db", "current")[1].count(head) == 2
    assert _run("db", "downgrade", "base") == (0, "at None\n")
    assert "current: None" in _run("db", "current")[1]
    assert _run("db", "upgrade") == (0, f"at {head}\n")


def test_jobs_commands(embedded_stack, tmp_path):
    spec = tmp_path / "job.yaml"
    spec.write_text(GOOD)
    code, out = _run("jobs", "submit", str(spec), "--owner", "ana")
    assert code == 0
    job_id = out.strip()
    code, out = _run("jobs", "list")
    assert code == 0 and "queued" in out and "ana" in out
    code, out = _run("jobs", "show", job_id, "--json")
    assert code == 0 and '"max_steps": 2' in out
    assert _run("jobs", "cancel", job_id) == (0, f"job {job_id}: cancelled\n")
    assert _run("jobs", "retry", job_id) == (0, f"job {job_id}: queued\n")
    assert _run("jobs", "reap")[1] == "no stale jobs\n"
    code, out = _run("jobs", "show", "999")
    assert code == 1 and "no job 999" in out


def test_bad_spec_refused_at_submit_naming_the_field(embedded_stack, tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text(GOOD.replace("max_steps: 2", "max_steps: 2\n  lr: -1"))
    proc = subprocess.run(
        [sys.executable, "-m", "app.cli", "jobs", "submit", str(spec)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env=embedded_stack.env,
    )
    assert proc.returncode != 0
    assert "config.lr: lr must be in [1e-08, 10], got -1" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert embedded_stack.registry.list_jobs() == []


def test_worker_execs_celery(monkeypatch):
    seen = {}
    monkeypatch.setattr("os.execvp", lambda path, argv: seen.update(argv=argv))
    code, _ = _run("worker", "--queue", "gpu", "--concurrency", "1")
    assert code == 0
    argv = seen["argv"]
    assert argv[1:6] == ["-m", "celery", "-A", "worker.celery_app", "worker"]
    assert argv[argv.index("-Q") + 1] == "gpu" and argv[argv.index("--pool") + 1] == "solo"


def test_every_bad_input_is_one_clear_message(embedded_stack, tmp_path):
    """Ids out of range, bad YAML, an empty spec, unknown revisions: one message, rc != 0."""
    bad, empty = tmp_path / "bad.yaml", tmp_path / "empty.yaml"
    bad.write_text("a: [1,\n")
    empty.write_text("")
    huge = str(2**63)
    for args in (
        ("jobs", "show", huge),
        ("jobs", "cancel", huge),
        ("jobs", "retry", huge),
        ("jobs", "list", "--sweep", "99999999999999999999"),
        ("jobs", "list", "--limit", "-5"),
        ("jobs", "submit", str(bad)),
        ("jobs", "sweep", str(bad)),
        ("jobs", "submit", str(empty)),
        ("db", "upgrade", "nosuchrev"),
        ("db", "downgrade", "zzz"),
    ):
        result = CliRunner().invoke(cli, list(args))
        assert result.exit_code != 0, (args, result.output)
        assert not isinstance(result.exception, Exception) or isinstance(
            result.exception, SystemExit
        ), (args, result.exception)
        assert "Traceback" not in result.output and "Error:" in result.output, args
    assert "not valid YAML" in _run("jobs", "submit", str(bad))[1]
    assert (
        "name at least one task" in CliRunner().invoke(cli, ["jobs", "submit", str(empty)]).output
    )
    assert embedded_stack.registry.list_jobs() == []  # the empty spec queued nothing


def test_an_unreachable_registry_is_one_line_without_the_password(monkeypatch, tmp_path):
    from tests.dashboard_stack import reset_caches

    monkeypatch.setenv("PROPETL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("PROPETL_DATABASE_URL", "postgresql://u:secret@127.0.0.1:1/x")
    reset_caches()
    try:
        for args in (("db", "current"), ("jobs", "list")):
            result = CliRunner().invoke(cli, list(args))
            assert result.exit_code != 0 and isinstance(result.exception, SystemExit), args
            assert "cannot be used" in result.output and "secret" not in result.output
            assert len(result.output.strip().splitlines()) <= 2, result.output
    finally:
        monkeypatch.delenv("PROPETL_DATABASE_URL")
        monkeypatch.delenv("PROPETL_DATA_DIR")
        reset_caches()


def test_both_entry_points_turn_datasets_progress_bars_off(monkeypatch):
    import datasets

    import app.cli
    import propetl.cli

    monkeypatch.setattr(propetl.cli, "cli", lambda **kwargs: None)
    was = datasets.is_progress_bar_enabled()
    datasets.enable_progress_bars()
    try:
        app.cli.main()
        assert not datasets.is_progress_bar_enabled()
    finally:
        (datasets.enable_progress_bars if was else datasets.disable_progress_bars)()


def test_the_watchdog_stops_a_worker_whose_server_is_gone(monkeypatch):
    """The portable fallback of the embedded worker's parent-death signal."""
    import os
    import signal

    from worker import lifecycle

    sent: list[tuple[int, int]] = []
    monkeypatch.setattr(lifecycle.os, "kill", lambda pid, sig: sent.append((pid, sig)))
    lifecycle._watch_parent(-1, interval=0.01)  # -1: never this process's parent
    assert sent == [(os.getpid(), signal.SIGTERM)]

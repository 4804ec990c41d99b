"""The artifacts folder fails at the end of a job: full, read-only, or not a folder.

The job fails with a message that names the folder and the cause, nothing half-written is
registered or left behind, and a retry once the folder is fixed registers the model.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import assert_exactly_once, set_env, tiny_job

pytestmark = pytest.mark.timeout(180)


@contextlib.contextmanager
def tmpfs(path: Path, size: str, read_only: bool = False) -> Iterator[Path]:
    """A small RAM file system mounted at `path` (skips the test where mounting is refused)."""
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(folder: Path, leave: int) -> None:
    """Write into `folder` until the disk is full, then free `leave` bytes."""
    with (folder / "filler").open("wb", buffering=0) as handle, contextlib.suppress(OSError):
        while True:
            handle.write(b"\0" * 4096)
    size = (folder / "filler").stat().st_size
    with (folder / "filler").open("r+b") as handle:
        handle.truncate(max(0, size - leave))


def _run_to_failure(stack, monkeypatch, artifacts: Path) -> tuple[int, str]:
    from worker.runner import execute

    job_id = stack.registry.submit_job(tiny_job(stack.queue))
    set_env(stack, monkeypatch, PROPETL_ARTIFACTS_DIR=str(artifacts))  # broken from now on
    registry = stack.registry
    assert execute(job_id, registry=registry) == "failed"
    job = registry.get_job(job_id)
    assert job.status == "failed" and job.error
    assert registry.prototype_for_job(job_id) is None
    assert registry.list_prototypes() == []
    return job_id, job.error


def _retry_succeeds(stack, monkeypatch, job_id: int, artifacts: Path) -> None:
    from worker.runner import execute

    set_env(stack, monkeypatch, PROPETL_ARTIFACTS_DIR=str(artifacts))
    stack.registry.retry(job_id)
    assert execute(job_id, registry=stack.registry) == "succeeded"
    assert_exactly_once(stack, job_id, attempts=2)


def test_full_disk_fails_the_job_clearly_and_leaves_nothing(embedded_stack, monkeypatch):
    stack = embedded_stack
    with tmpfs(stack.tmp / "full", "256k") as disk:
        (disk / "prototypes").mkdir()
        fill(disk, leave=8192)  # room for the first files of the model, not for all
        job_id, error = _run_to_failure(stack, monkeypatch, disk)
        assert "No space left on device" in error and str(disk / "prototypes") in error
        assert "Traceback" not in error
        assert sorted(p.name for p in (disk / "prototypes").iterdir()) == []
        (disk / "filler").unlink()
        _retry_succeeds(stack, monkeypatch, job_id, disk)


def test_read_only_artifacts_fail_the_job_clearly(embedded_stack, monkeypatch):
    stack = embedded_stack
    with tmpfs(stack.tmp / "ro", "1m", read_only=True) as disk:
        job_id, error = _run_to_failure(stack, monkeypatch, disk)
        assert "Read-only file system" in error and str(disk) in error
    _retry_succeeds(stack, monkeypatch, job_id, stack.tmp / "artifacts-ok")


def test_artifacts_path_that_is_a_file_fails_the_job_clearly(embedded_stack, monkeypatch):
    stack = embedded_stack
    blocker = stack.tmp / "not-a-folder"
    blocker.write_text("a file where the artifacts folder should be")
    job_id, error = _run_to_failure(stack, monkeypatch, blocker)
    assert str(blocker) in error and "Not a directory" in error
    _retry_succeeds(stack, monkeypatch, job_id, stack.tmp / "artifacts-ok")

"""`propetl prototypes tasks | add | delete-task` on a registry with a tiny trained prototype."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

pytestmark = pytest.mark.timeout(300)


def test_prototypes_cli_lists_adds_and_deletes(isolated_settings):
    from app import db
    from app.cli import cli
    from app.registry import get_registry
    from worker.runner import execute

    db.upgrade()
    registry = get_registry()
    registry._enqueue = lambda *args: None  # run here, no broker
    base = registry.submit_job(
        {
            "config": {
                "backbone": "tiny-bert",
                "tasks": ["bbc_news"],
                "max_examples": 16,
                "max_steps": 2,
                "batch_size": 8,
                "propetl": {"keep": 0.3},
            }
        }
    )
    assert execute(base, registry=registry) == "succeeded"
    uid = registry.prototype_for_job(base).uid
    run = CliRunner().invoke
    result = run(
        cli, ["prototypes", "add", uid[:8], "--tasks", "rotten_tomatoes", "--max-steps", "2"]
    )
    assert result.exit_code == 0, result.output
    job_id = int(result.output.strip())
    assert execute(job_id, registry=registry) == "succeeded", registry.get_job(job_id).error
    listing = run(cli, ["prototypes", "tasks", uid[:8]])
    assert listing.exit_code == 0, listing.output
    lines = listing.output.strip().splitlines()
    assert "bbc_news" in lines[0] and f"job #{base}" in lines[0]
    assert "rotten_tomatoes" in lines[1] and f"job #{job_id}" in lines[1]
    refused = run(cli, ["prototypes", "add", uid, "--tasks", "bbc_news"])
    assert refused.exit_code != 0 and "already on the prototype" in refused.output
    assert "Traceback" not in refused.output
    from app.registry import InvalidStateError

    with pytest.raises(InvalidStateError, match="a sweep cannot add tasks"):
        registry.create_sweep(
            {
                "base": {"base_prototype": uid, "config": {"tasks": ["tweet_sentiment"]}},
                "grid": {"lr": [0.1, 0.2]},
            }
        )
    deleted = run(cli, ["prototypes", "delete-task", uid, "rotten_tomatoes"])
    assert deleted.exit_code == 0, deleted.output
    assert [m.task.name for m in registry.get_prototype(uid).mask_sets] == ["bbc_news"]

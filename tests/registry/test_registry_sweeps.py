"""Sweeps: grid validation (unit), and the registry writing a sweep's jobs in one transaction."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.sweeps import MAX_SWEEP_JOBS, SweepSpec, field_path, parse_grid_option, value_at

BASE = {
    "name": "base",
    "config": {
        "backbone": "tiny-bert",
        "tasks": ["rotten_tomatoes"],
        "max_steps": 2,
        "max_examples": 16,
    },
}


def sweep(grid, **extra) -> SweepSpec:
    return SweepSpec.model_validate({"name": "k-sweep", "base": BASE, "grid": grid, **extra})


def test_grid_expands_to_one_valid_job_per_combination():
    spec = sweep({"keep": [0.05, 0.5, 1.0], "petl": ["adapter", "lora"]})
    jobs = spec.jobs()
    assert len(jobs) == 6
    assert [(j.config.propetl.keep, j.config.propetl.petl) for j in jobs[:2]] == [
        (0.05, "adapter"),
        (0.05, "lora"),
    ]
    assert all(j.config.max_steps == 2 and j.config.backbone == "tiny-bert" for j in jobs)
    assert jobs[1].name == "k-sweep · keep=0.05 · petl=lora"
    assert spec.grid == {"propetl.keep": [0.05, 0.5, 1.0], "propetl.petl": ["adapter", "lora"]}
    assert spec.combinations()[1] == {"propetl.keep": 0.05, "propetl.petl": "lora"}


@pytest.mark.parametrize(
    ("key", "path"),
    [
        ("keep", "propetl.keep"),
        ("propetl.petl", "propetl.petl"),
        ("config.lr", "lr"),
        ("seed", "seed"),
        ("propetl.seed", "propetl.seed"),
    ],
)
def test_field_paths(key, path):
    assert field_path(key) == path


def test_cli_grid_options_read_values_as_yaml():
    assert parse_grid_option("keep=0.05, 0.1,1") == ("keep", [0.05, 0.1, 1])
    assert parse_grid_option("petl=adapter,lora") == ("petl", ["adapter", "lora"])
    assert parse_grid_option("lr=1e-3,3e-4") == ("lr", [1e-3, 3e-4])  # numbers, as YAML 1.2
    assert [j.config.lr for j in sweep({"lr": parse_grid_option("lr=1e-3,3e-4")[1]}).jobs()] == [
        1e-3,
        3e-4,
    ]
    with pytest.raises(ValueError, match="FIELD=V1"):
        parse_grid_option("keep")


@pytest.mark.parametrize(
    ("grid", "words"),
    [
        ({"kep": [0.1]}, "unknown field 'kep'"),
        ({"keep": []}, "propetl.keep: give at least one value"),
        ({"keep": [0.1, 0.1]}, "a value is repeated"),
        ({}, "at least one field"),
        ({"keep": [0.1, 0.2], "propetl.keep": [0.3]}, "given twice"),
        (
            {"lr": [i / 1000 for i in range(1, 66)]},
            f"65 combinations; a sweep may have at most {MAX_SWEEP_JOBS}",
        ),
        ({"keep": [0.5, 1.5]}, "keep must be in [1e-06, 1], got 1.5 (in the job keep=1.5)"),
        (
            {"bottleneck": [8, 1000]},
            "bottleneck must be at most 256 (8 x the hidden size 32 of "
            "tiny-bert), got 1000 (in the job bottleneck=1000)",
        ),
        ({"lora_r": [64], "petl": ["lora"]}, "lora_r must be at most 32"),
        ({"max_steps": [True]}, "max_steps must be an integer, got True"),
        ({"petl": ["lora", "ia3"]}, "(in the job petl=ia3)"),
        ({"tasks": ["rotten_tomatoes", "nope"]}, "unknown task 'nope'"),
    ],
)
def test_bad_grids_are_refused_with_the_field_named(grid, words):
    with pytest.raises(ValidationError) as err:
        sweep(grid)
    assert words in str(err.value)


def test_a_bad_base_spec_is_refused():
    with pytest.raises(ValidationError, match=r"base\.config\.lr"):
        SweepSpec.model_validate(
            {"base": {"config": {**BASE["config"], "lr": -1}}, "grid": {"keep": [0.1]}}
        )


def test_task_values_may_be_single_names():
    jobs = sweep({"tasks": ["rotten_tomatoes", "bbc_news"]}).jobs()
    assert [j.config.tasks for j in jobs] == [["rotten_tomatoes"], ["bbc_news"]]
    assert value_at(jobs[1].to_json_dict()["config"], "tasks") == ["bbc_news"]


# --- the registry ------------------------------------------------------------------------


def test_create_sweep_records_groups_and_enqueues(reg):
    lone = reg.submit_job(BASE)
    sweep_id = reg.create_sweep(
        sweep({"keep": [0.1, 0.5], "petl": ["adapter", "lora"]}, owner="alice")
    )
    found = reg.get_sweep(sweep_id)
    assert found.name == "k-sweep" and found.owner == "alice"
    assert found.base_spec["owner"] == "alice"  # not the base spec's default owner
    assert found.grid == {"propetl.keep": [0.1, 0.5], "propetl.petl": ["adapter", "lora"]}
    assert len(found.jobs) == 4 and all(j.owner == "alice" for j in found.jobs)
    assert [value_at(j.spec["config"], "propetl.keep") for j in found.jobs] == [0.1, 0.1, 0.5, 0.5]
    assert sorted(s[0] for s in reg.sent) == sorted([lone, *(j.id for j in found.jobs)])
    assert {j.id for j in reg.list_jobs(sweep_id=sweep_id)} == {j.id for j in found.jobs}
    assert reg.get_job(lone).sweep_id is None
    assert [s.id for s in reg.list_sweeps(owner="alice")] == [sweep_id]
    assert reg.list_sweeps(owner="bob") == []


def test_sweep_jobs_are_written_in_one_transaction(reg, monkeypatch):
    calls = []
    original = reg.run_dir_for

    def failing(job_id):
        calls.append(job_id)
        if len(calls) == 3:
            raise OSError("disk full")
        return original(job_id)

    monkeypatch.setattr(reg, "run_dir_for", failing)
    with pytest.raises(OSError, match="disk full"):
        reg.create_sweep(sweep({"keep": [0.1, 0.2, 0.3, 0.4]}))
    assert len(calls) == 3
    assert reg.list_jobs() == [] and reg.list_sweeps() == [] and reg.sent == []


def test_an_invalid_combination_writes_nothing(reg):
    with pytest.raises(ValidationError):
        reg.create_sweep({"base": BASE, "grid": {"keep": [0.1, 2.0]}})
    assert reg.list_jobs() == [] and reg.list_sweeps() == []

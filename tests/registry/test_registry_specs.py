"""JobSpec: one model over the engine's TrainConfig, with errors that name the field."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.specs import JobSpec, describe_errors
from propetl.config import TrainConfig

GOOD = {"backbone": "tiny-bert", "tasks": ["rotten_tomatoes"], "max_steps": 4, "max_examples": 32}


def _locs(err: ValidationError) -> list[tuple]:
    return [tuple(e["loc"]) for e in err.errors()]


def test_nested_and_flat_forms_agree():
    nested = JobSpec.model_validate({"name": "a", "config": GOOD})
    flat = JobSpec.model_validate({"name": "a", **GOOD})
    assert nested == flat
    assert isinstance(nested.config, TrainConfig)
    assert nested.config.max_steps == 4


def test_round_trip_through_json():
    # a CLI / Python caller may name any queue (API and dashboard jobs only listed ones)
    spec = JobSpec.model_validate(
        {"owner": "ana", "queue": "gpu", "config": GOOD}, context={"paths": True}
    )
    again = JobSpec.from_stored(spec.to_json_dict())
    assert again == spec and again.config.to_dict() == spec.config.to_dict()


@pytest.mark.parametrize(
    ("override", "loc", "words"),
    [
        ({"lr": -1}, ("config", "lr"), "lr must be in [1e-08, 10], got -1"),
        ({"max_length": 2}, ("config", "max_length"), "max_length"),
        ({"batch_size": "many"}, ("config", "batch_size"), "valid integer"),
        ({"propetl": {"keep": 1.5}}, ("config", "propetl", "keep"), "keep must be in"),
        ({"propetl": {"petl": "ia3"}}, ("config", "propetl", "petl"), "adapter"),
        ({"backbone": "tiny-nope"}, ("config", "backbone"), "unknown tiny backbone"),
        ({"tasks": []}, ("config", "tasks"), "at least one task"),
        ({"sampling": "random"}, ("config", "sampling"), "sampling must be one of"),
    ],
)
def test_bad_values_name_the_field(override, loc, words):
    with pytest.raises(ValidationError) as info:
        JobSpec.model_validate({"config": {**GOOD, **override}})
    assert loc in _locs(info.value)
    assert words in describe_errors(info.value)
    assert ".".join(loc) in describe_errors(info.value)


def test_unknown_option_and_bad_queue():
    with pytest.raises(ValidationError) as info:
        JobSpec.model_validate({"config": GOOD, "learning_rate": 1, "queue": "a b"})
    assert {("learning_rate",), ("queue",)} <= set(_locs(info.value))


def test_unknown_task_is_refused_when_the_catalog_exists():
    pytest.importorskip("propetl.data", reason="task catalog not written yet")
    from propetl import data

    if not hasattr(data, "get_task_info"):
        pytest.skip("propetl.data.get_task_info not written yet")
    with pytest.raises(ValidationError) as info:
        JobSpec.model_validate({"config": {**GOOD, "tasks": ["rotten_tomatoes", "no_such_task"]}})
    assert ("config", "tasks", 1) in _locs(info.value)


@pytest.mark.parametrize("bad", [{"lr": -1, "max_steps": -3}, {"lr": "fast"}])
def test_one_reply_names_bad_values_and_unknown_names_together(bad):
    config = {**GOOD, **bad, "backbone": "tiny-nope", "tasks": ["rotten_tomatoes", "nope"]}
    with pytest.raises(ValidationError) as info:
        JobSpec.model_validate({"config": config})
    locs = set(_locs(info.value))
    assert {("config", k) for k in bad} | {("config", "backbone"), ("config", "tasks", 1)} <= locs
    assert ("config", "tasks", 0) not in locs and len(locs) == len(_locs(info.value))
    # a stored spec read back is not looked up again
    with pytest.raises(ValidationError) as info:
        JobSpec.model_validate({"config": config}, context={"resolve": False})
    assert set(_locs(info.value)) == {("config", k) for k in bad}


def test_the_engine_checks_name_the_job_and_its_propetl_options_together():
    # checks that only the engine makes (consistency, membership), in both parts of a config
    config = {
        **GOOD,
        "tasks": ["rotten_tomatoes", "rotten_tomatoes"],
        "propetl": {"masks": "random", "sharing": "none", "lora_targets": ["key"]},
    }
    with pytest.raises(ValidationError) as info:
        JobSpec.model_validate({"config": config})
    locs = _locs(info.value)
    assert set(locs) == {
        ("config", "tasks"),
        ("config", "propetl", "masks"),
        ("config", "propetl", "lora_targets"),
    }, locs
    assert len(locs) == 3 and "duplicates" in describe_errors(info.value)


def test_one_message_per_field_the_bounds_naming_both_ends():
    config = {
        "backbone": "nope-backbone",
        "tasks": ["rotten_tomatoes"],
        "max_steps": -1,
        "propetl": {"keep": 5, "petl": "zzz"},
    }
    with pytest.raises(ValidationError) as info:
        JobSpec.model_validate({"config": config})
    locs = _locs(info.value)
    assert len(locs) == len(set(locs)) == 4, describe_errors(info.value)
    text = describe_errors(info.value)
    assert "max_steps must be in [1, 10000000], got -1" in text and ">= 1" not in text
    assert "keep must be in [1e-06, 1], got 5" in text and "(0, 1]" not in text


@pytest.mark.parametrize(
    ("override", "loc", "words"),
    [
        ({"max_steps": True}, ("config", "max_steps"), "max_steps must be an integer, got True"),
        ({"lr": False}, ("config", "lr"), "lr must be a number, got False (bool)"),
        ({"batch_size": "8"}, ("config", "batch_size"), "batch_size must be an integer, got '8'"),
        ({"lr": "1e-3"}, ("config", "lr"), "lr must be a number, got '1e-3' (str)"),
        ({"propetl": {"keep": "0.5"}}, ("config", "propetl", "keep"), "keep must be a number"),
        ({"propetl": {"bottleneck": True}}, ("config", "propetl", "bottleneck"), "an integer"),
        ({"propetl": {"extra": {"a": 1}}}, ("config", "propetl", "extra"), "got a"),
    ],
)
def test_wrong_types_are_refused_not_converted(override, loc, words):
    with pytest.raises(ValidationError) as info:
        JobSpec.model_validate({"config": {**GOOD, **override}})
    assert _locs(info.value) == [loc] and words in describe_errors(info.value)


def test_json_numbers_and_yaml_exponents_still_read():
    spec = JobSpec.model_validate(
        {"config": {**GOOD, "lr": 1e-3, "max_steps": 100, "epochs": 2, "propetl": {"keep": 1}}}
    )
    assert spec.config.lr == 1e-3 and spec.config.max_steps == 100 and spec.config.epochs == 2.0
    from app.specs import load_yaml

    assert load_yaml("lr: 1e-3\nmask_lr: 3.0e2\nmax_steps: 100\nname: 1e5x") == {
        "lr": 1e-3,
        "mask_lr": 300.0,
        "max_steps": 100,
        "name": "1e5x",
    }


def test_from_yaml(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text(
        "name: smoke\nowner: ana\nconfig:\n  backbone: tiny-bert\n"
        "  tasks: [rotten_tomatoes]\n  max_steps: 3\n  propetl: {petl: lora}\n"
        "  lr: 1e-3\n"
    )
    spec = JobSpec.from_yaml(path)
    assert spec.name == "smoke" and spec.config.propetl.petl == "lora"
    assert spec.config.lr == 1e-3  # YAML 1.2's float, not the text PyYAML would read
    assert spec.config.mask_lr == 3e-2  # TrainConfig's own default for LoRA
    path.write_text("- not a mapping\n")
    with pytest.raises(ValueError, match="mapping"):
        JobSpec.from_yaml(path)


def test_a_data_file_task_must_exist(tmp_path):
    """From the CLI (`paths`): a server path to a data file, checked whole."""
    trusted = {"paths": True}
    data = tmp_path / "mine.csv"
    with pytest.raises(ValidationError) as info:
        JobSpec.model_validate({"config": {**GOOD, "tasks": [str(data)]}}, context=trusted)
    assert ("config", "tasks", 0) in _locs(info.value)
    data.write_text("text,label\na,0\n")
    with pytest.raises(ValidationError, match="only one class"):
        JobSpec.model_validate({"config": {**GOOD, "tasks": [str(data)]}}, context=trusted)
    rows = "".join(f"text number {i},{i % 2}\n" for i in range(40))
    data.write_text("text,label\n" + rows)
    assert JobSpec.model_validate({"config": {**GOOD, "tasks": [str(data)]}}, context=trusted)

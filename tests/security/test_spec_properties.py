"""Property tests: any job spec is accepted or refused with a message naming a field."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from app.specs import JobSpec, describe_errors
from propetl.config import ConfigError, PropetlConfig, TrainConfig

from .strategies import KNOWN, config_dicts, json_values, propetl_dicts, spec_dicts

FAST = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))


def _names_a_field(err: ValidationError) -> None:
    assert err.errors(), "a ValidationError with no errors"
    for e in err.errors():
        loc = [str(p) for p in e["loc"]]
        if not loc and e["type"] == "model_type":
            continue  # the spec itself is not a mapping: nothing to name
        if e["type"] == "extra_forbidden":
            assert len(loc) == 1, e  # located at the unknown key itself
            continue
        first_word = str(e["msg"]).split(" ", 1)[0].rstrip(":")
        assert loc or first_word in KNOWN, e
        assert not loc or loc[0] in KNOWN or first_word in KNOWN, e
    assert describe_errors(err)  # the one-line-per-problem text the UI and CLI show


class TestJobSpecProperties:
    """`JobSpec.model_validate` on arbitrary dicts: accepted, or a located ValidationError."""

    @FAST
    @given(spec_dicts)
    def test_any_spec_is_accepted_or_refused_by_field(self, data):
        try:
            spec = JobSpec.model_validate(data, context={"resolve": False})
        except ValidationError as err:
            _names_a_field(err)
            return
        # What is accepted round-trips through the registry's JSON form unchanged.
        again = JobSpec.from_stored(spec.to_json_dict())
        assert again.config.to_dict() == spec.config.to_dict()
        spec.config.validate()

    @FAST
    @given(config_dicts)
    def test_any_nested_config_is_accepted_or_refused_by_field(self, config):
        try:
            JobSpec.model_validate({"config": config}, context={"resolve": False})
        except ValidationError as err:
            _names_a_field(err)

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        st.fixed_dictionaries(
            {
                "backbone": st.sampled_from(
                    ["tiny-bert", "tiny-nope", "", "../../etc", "/dev/null"]
                ),
                "tasks": st.lists(
                    st.one_of(
                        st.sampled_from(
                            [
                                "rotten_tomatoes",
                                "bbc_news",
                                "nope",
                                "/etc/passwd",
                                "../../x.csv",
                                "a.jsonl",
                                "/dev/null",
                                "~/.ssh/id_rsa",
                            ]
                        ),
                        st.text(max_size=10),
                    ),
                    max_size=3,
                ),
            }
        )
    )
    def test_resolving_backbones_and_tasks_never_crashes(self, config):
        try:
            JobSpec.model_validate({"config": config})
        except ValidationError as err:
            _names_a_field(err)


class TestTrainConfigFromDict:
    """`TrainConfig.from_dict` / `PropetlConfig.from_dict`: only `ConfigError`, naming the field."""

    @FAST
    @given(st.one_of(config_dicts, json_values))
    def test_train_config_from_dict(self, data):
        try:
            config = TrainConfig.from_dict(data)
        except ConfigError as err:
            assert str(err)
            return
        assert TrainConfig.from_json(config.to_json()) == config

    @FAST
    @given(propetl_dicts)
    def test_propetl_config_from_dict(self, data):
        try:
            config = PropetlConfig.from_dict(data)
        except ConfigError as err:
            assert str(err)
            return
        assert PropetlConfig.from_json(config.to_json()) == config

    @pytest.mark.parametrize(
        ("data", "field"),
        [
            ({"lr": "fast"}, "lr"),
            ({"tasks": 5}, "tasks"),
            ({"tasks": [["a"]]}, "tasks"),
            ({"propetl": "adapter"}, "propetl"),
            ({"propetl": {"keep": "half"}}, "keep"),
            ({"propetl": {"lora_targets": 5}}, "lora_targets"),
            ({"epochs": float("inf")}, "epochs"),
            ({"temperature": float("nan")}, "temperature"),
            ({"batch_size": 2.5}, "batch_size"),
            ({"propetl": {"extra": []}}, "extra"),
            ({"max_steps": True}, "max_steps"),
        ],
    )
    def test_wrong_types_name_the_field(self, data, field):
        with pytest.raises(ConfigError, match=rf"^(propetl\.)?{field} must be"):
            TrainConfig.from_dict(data)

    def test_not_a_mapping(self):
        with pytest.raises(ConfigError, match="mapping"):
            TrainConfig.from_dict(["lr"])
        with pytest.raises(ConfigError, match="mapping"):
            PropetlConfig.from_dict("adapter")

    def test_infinite_numbers_are_refused_through_the_spec_too(self):
        with pytest.raises(ValidationError) as info:
            JobSpec.model_validate({"config": {"epochs": float("inf")}}, context={"resolve": False})
        assert info.value.errors()[0]["loc"] == ("config", "epochs")

"""Hypothesis strategies shared by the security tests: JSON-ish values and job-spec dicts."""

from __future__ import annotations

from dataclasses import MISSING, fields

from hypothesis import strategies as st

from propetl.config import PropetlConfig, TrainConfig

TRAIN_FIELDS = [f.name for f in fields(TrainConfig) if f.name != "propetl"]
PROPETL_FIELDS = [f.name for f in fields(PropetlConfig)]
SPEC_FIELDS = ["name", "owner", "queue", "sweep_id"]
#: Every name an error may be located at or start its message with.
KNOWN = {*TRAIN_FIELDS, *PROPETL_FIELDS, *SPEC_FIELDS, "propetl", "config"}

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(
        [
            "",
            "0",
            "1e-3",
            "adapter",
            "lora",
            "prefix",
            "none",
            "propetl-or",
            "cls",
            "mean",
            "roberta",
            "query",
            "value",
            "fp16",
            "cuda",
            "uniform",
            "=cmd|' /C calc'!A0",
            "../../etc/passwd",
            "\x00",
            "🙂" * 5,
        ]
    ),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)


def _default(f):
    if f.default is not MISSING:
        return f.default
    return f.default_factory()


def _plausible(name: str, default: object) -> st.SearchStrategy:
    """Values of the field's own kind (near its range limits), mixed with anything at all."""
    if isinstance(default, bool):
        kind = st.booleans()
    elif isinstance(default, int):
        kind = st.integers(min_value=-5, max_value=5000)
    elif isinstance(default, float):
        kind = st.floats(min_value=-2.0, max_value=20.0)
    elif isinstance(default, (list, tuple)):
        kind = st.lists(
            st.sampled_from(["query", "value", "rotten_tomatoes", "bbc_news", "x"]), max_size=3
        )
    elif default is None:
        kind = st.one_of(st.none(), st.integers(-3, 100), st.floats(-1.0, 1.5))
    else:
        kind = st.text(max_size=12)
    return st.one_of(kind, json_values)


def _field_dicts(dataclass_fields) -> st.SearchStrategy[dict]:
    return st.fixed_dictionaries(
        {}, optional={f.name: _plausible(f.name, _default(f)) for f in dataclass_fields}
    )


propetl_dicts = st.one_of(_field_dicts(fields(PropetlConfig)), json_values)
config_dicts = st.builds(
    lambda base, propetl, extra: {
        **base,
        **({"propetl": propetl} if propetl is not None else {}),
        **extra,
    },
    _field_dicts([f for f in fields(TrainConfig) if f.name != "propetl"]),
    st.one_of(st.none(), propetl_dicts),
    st.dictionaries(st.text(max_size=8), json_values, max_size=1),
)
spec_dicts = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "name": json_values,
            "owner": json_values,
            "queue": json_values,
            "sweep_id": json_values,
            "config": st.one_of(config_dicts, json_values),
        },
    ),
    config_dicts,  # flat: training options at the top level
    json_values,
)

"""GLUE: the paper's split protocol on local stand-ins, and a clear, fast offline error."""

from __future__ import annotations

import time

import datasets
import pytest

from propetl.data import TaskUnavailableError, glue_task_from_dataset_dict, load_task
from propetl.data import glue as glue_module
from propetl.data.glue import GLUE

LABELS = {"mnli": ["entailment", "neutral", "contradiction"]}


def _stand_in(name: str, n_train: int, n_val: int) -> datasets.DatasetDict:
    spec = GLUE[name]

    def split(n: int, tag: str) -> datasets.Dataset:
        cols: dict[str, list] = {c: [f"{tag} {c} {i}" for i in range(n)] for c in spec.columns}
        if spec.labels is None:
            cols["label"] = [i % 50 / 10 for i in range(n)]
            label = datasets.Value("float32")
        else:
            cols["label"] = [i % len(spec.labels) for i in range(n)]
            label = datasets.ClassLabel(names=list(spec.labels))
        cols["idx"] = list(range(n))
        feats = {c: datasets.Value("string") for c in spec.columns}
        return datasets.Dataset.from_dict(
            cols,
            features=datasets.Features({**feats, "label": label, "idx": datasets.Value("int32")}),
        )

    val = spec.validation
    test = split(5, "test").map(lambda r: {"label": -1} if spec.labels else r)
    return datasets.DatasetDict(
        {"train": split(n_train, "train"), val: split(n_val, "val"), "test": test}
    )


@pytest.mark.parametrize("name", ["cola", "mrpc", "stsb", "rte"])
def test_small_tasks_halve_validation(name: str) -> None:
    dsd = _stand_in(name, 120, 41)
    data = glue_task_from_dataset_dict(name, dsd, seed=3)
    assert data.sizes() == {"train": 120, "dev": 20, "test": 21}
    pair = len(GLUE[name].columns) == 2
    assert data.splits["dev"].column_names == (
        ["text", "text_pair", "label"] if pair else ["text", "label"]
    )
    dev, test = set(data.splits["dev"]["text"]), set(data.splits["test"]["text"])
    assert not dev & test and all(t.startswith("val") for t in dev | test)
    assert dev | test == set(dsd["validation"][GLUE[name].columns[0]])
    assert data.info.is_regression == (name == "stsb")
    again = glue_task_from_dataset_dict(name, dsd, seed=3)
    assert again.splits["dev"]["text"] == data.splits["dev"]["text"]
    other = glue_task_from_dataset_dict(name, dsd, seed=4)
    assert set(other.splits["dev"]["text"]) != dev


@pytest.mark.parametrize("name", ["sst2", "qqp", "mnli", "qnli"])
def test_large_tasks_hold_out_1000_training_examples(name: str) -> None:
    dsd = _stand_in(name, 1300, 30)
    data = glue_task_from_dataset_dict(name, dsd, seed=0)
    assert data.sizes() == {"train": 300, "dev": 1000, "test": 30}
    train, dev = set(data.splits["train"]["text"]), set(data.splits["dev"]["text"])
    assert not train & dev and all(t.startswith("train") for t in train | dev)
    assert all(t.startswith("val") for t in data.splits["test"]["text"])
    assert data.info.num_labels == len(GLUE[name].labels or ())


def test_pair_columns_map_in_order() -> None:
    data = glue_task_from_dataset_dict("qnli", _stand_in("qnli", 1010, 4), seed=0)
    row = data.splits["test"][0]
    assert row["text"].startswith("val question") and row["text_pair"].startswith("val sentence")


def test_offline_error_is_clear_and_fast(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(TaskUnavailableError) as err:
        load_task("glue/sst2", cache_dir=tmp_path)
    assert time.monotonic() - start < 10
    message = str(err.value)
    assert "cannot reach the Hugging Face hub" in message
    assert "'glue/sst2' is not in the local cache" in message


def test_unreachable_hub_is_detected_without_env(monkeypatch, tmp_path) -> None:
    for var in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(glue_module, "hub_reachable", lambda timeout=3.0: False)
    before = datasets.config.HF_HUB_OFFLINE
    start = time.monotonic()
    with pytest.raises(TaskUnavailableError, match="'glue/rte' is not in the local cache"):
        load_task("rte", cache_dir=tmp_path)
    assert time.monotonic() - start < 10
    assert before == datasets.config.HF_HUB_OFFLINE  # offline mode was only temporary

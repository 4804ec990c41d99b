"""Catalog and bundled tasks, read from the real files the packages ship."""

from __future__ import annotations

import json

import pytest

from propetl.data import (
    TaskInfo,
    UnknownTaskError,
    get_task_info,
    list_tasks,
    load_task,
)

BUNDLED_EXPECTED = {
    # name: (total after dropping duplicate / conflicting texts, label names)
    "rotten_tomatoes": (12752, ("negative", "positive")),
    "bbc_news": (2125, ("business", "entertainment", "politics", "sports", "tech")),
    "tweet_sentiment": (37185, ("negative", "neutral", "positive")),
}


def _texts(split) -> set[str]:
    return set(split["text"])


def test_list_tasks_has_bundled_and_glue() -> None:
    infos = {i.name: i for i in list_tasks()}
    assert set(BUNDLED_EXPECTED) <= set(infos)
    assert {"cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte"} <= set(infos)
    for name, (total, labels) in BUNDLED_EXPECTED.items():
        info = infos[name]
        assert info.source == "bundled"
        assert info.label_names == labels
        assert info.sizes is not None and sum(info.sizes.values()) == total


@pytest.mark.parametrize("name", sorted(BUNDLED_EXPECTED))
def test_bundled_splits_are_disjoint_stratified_and_stable(name: str) -> None:
    total, labels = BUNDLED_EXPECTED[name]
    data = load_task(name)
    assert list(data.splits) == ["train", "dev", "test"]
    assert data.splits["train"].column_names == ["text", "label"]
    sizes = data.sizes()
    assert sum(sizes.values()) == total
    assert abs(sizes["dev"] - total * 0.1) <= 2 and abs(sizes["test"] - total * 0.1) <= 2
    train, dev, test = (_texts(data.splits[s]) for s in ("train", "dev", "test"))
    assert len(train) + len(dev) + len(test) == total  # disjoint, no duplicates
    for split in data.splits.values():
        assert set(split["label"]) == set(range(len(labels)))
    again = load_task(name)
    for s in ("train", "dev", "test"):
        assert again.splits[s]["text"] == data.splits[s]["text"]


def test_seed_changes_split_and_max_examples_caps() -> None:
    a = load_task("bbc_news", seed=1)
    b = load_task("bbc_news", seed=2)
    assert _texts(a.splits["test"]) != _texts(b.splits["test"])
    small = load_task("bbc_news", seed=1, max_examples=7)
    assert small.sizes() == {"train": 7, "dev": 7, "test": 7}
    assert small.splits["train"]["text"] == a.splits["train"]["text"][:7]


def test_raw_file_counts_match_design() -> None:
    from propetl.data.bundled import BUNDLED

    assert len(BUNDLED["bbc_news"].read()) == 2225
    assert len(BUNDLED["tweet_sentiment"].read()) == 38158
    rt = BUNDLED["rotten_tomatoes"].read()
    assert len(rt) == 12808 and rt["text"].nunique() == 12752


def test_unknown_task_lists_known_names() -> None:
    with pytest.raises(UnknownTaskError) as err:
        load_task("rotten_tomatos")
    assert "rotten_tomatoes" in str(err.value) and "sst2" in str(err.value)
    with pytest.raises(UnknownTaskError):
        get_task_info("nope")
    assert isinstance(err.value, ValueError)


def test_glue_aliases_and_info() -> None:
    info = get_task_info("glue/STSB")
    assert info.name == "stsb" and info.is_regression and info.num_labels == 1
    assert info.main_metric == "combined" and info.is_pair
    assert get_task_info("cola").metrics == ("matthews",)
    assert get_task_info("mrpc").metrics == ("accuracy", "f1")


def test_task_info_json_round_trip() -> None:
    for info in list_tasks():
        again = TaskInfo.from_dict(json.loads(json.dumps(info.to_dict())))
        assert again == info
    assert get_task_info("mnli").num_labels == 3


def test_load_task_accepts_a_user_file(write) -> None:
    rows = "".join(f"text {i},{'ab'[i % 2]}\n" for i in range(40))
    data = load_task(str(write("mine.csv", "text,label\n" + rows)), max_examples=3)
    assert data.info.name == "mine" and data.info.source == "file"
    assert data.sizes() == {"train": 3, "dev": 3, "test": 3}

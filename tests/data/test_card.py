"""Dataset cards (issue 15): sizes, class balance and majority baseline, token lengths with
the share cut at a max length, duplicates and a content hash."""

from __future__ import annotations

from propetl.backbones import load_tokenizer
from propetl.data import load_task
from propetl.data.card import build_card, content_hash


def test_bundled_card():
    data = load_task("rotten_tomatoes")
    card = build_card(data, load_tokenizer("minilm-l6"), 16, "minilm-l6")
    assert card["sizes"] == {s: len(data.splits[s]) for s in ("train", "dev", "test")}
    balance = card["class_balance"]["train"]
    assert (
        set(balance) == {"negative", "positive"} and sum(balance.values()) == card["sizes"]["train"]
    )
    major = card["majority_baseline"]
    assert 0.5 <= major["test_accuracy"] < 0.6  # rotten_tomatoes is nearly balanced
    tokens = card["tokens"]
    assert tokens["percentiles"][50] <= tokens["percentiles"][90] <= tokens["max"]
    assert 0.5 < tokens["truncated_share"] < 1  # most reviews are longer than 16 tokens
    assert sum(b["count"] for b in tokens["histogram"]) == card["sizes"]["train"]
    assert card["duplicates"]["across_splits"] == 0
    assert card["duplicates"]["removed_by_loader"]["duplicate_rows"] > 0
    assert build_card(data, load_tokenizer("minilm-l6"), 512)["tokens"]["truncated_share"] == 0
    assert content_hash(data) == content_hash(load_task("rotten_tomatoes"))
    assert content_hash(data) != content_hash(load_task("rotten_tomatoes", seed=7))


def test_user_file_card(tmp_path):
    rows = [f'"text number {i}",{"good" if i % 3 else "bad"}' for i in range(30)]
    path = tmp_path / "mine.csv"
    path.write_text("text,label\n" + "\n".join(rows) + "\n")
    card = build_card(load_task(str(path)))
    assert card["task"] == "mine" and sum(card["sizes"].values()) == 30
    assert card["class_balance"]["train"]["good"] > card["class_balance"]["train"]["bad"]
    assert card["duplicates"]["removed_by_loader"] is None and "tokens" not in card

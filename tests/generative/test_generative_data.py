"""bbc_headlines, text-to-text tokenisation with teacher forcing, and generation metrics."""

import pytest
import torch

from propetl.config import ConfigError, TrainConfig
from propetl.data import get_task_info, load_task
from propetl.data.text2text import read_bbc_headlines
from propetl.data.text2text_collate import (
    IGNORE_INDEX,
    Text2TextCollator,
    tokenize_text2text,
)
from propetl.data.text_metrics import bleu, generation_metrics, label_of, rouge
from propetl.generation import lm_loss
from propetl.tiny import tiny_tokenizer


@pytest.fixture(scope="module")
def headlines():
    return load_task("bbc_headlines", max_examples=40)


@pytest.fixture(scope="module")
def tokenizer():
    corpus = [f"the {w} of news headline article body answer" for w in range(50)]
    tok = tiny_tokenizer(corpus, vocab_size=120)
    tok.eos_token = "[SEP]"
    return tok


def test_bbc_headlines_is_first_line_and_body_with_fixed_splits():
    raw = read_bbc_headlines()
    assert len(raw) == 2225
    assert raw["target"].iloc[0] == "Ad sales boost Time Warner profit"
    assert raw["text"].iloc[0].startswith("Quarterly profits at US media giant TimeWarner jumped")
    info = get_task_info("bbc_headlines")
    assert info.generative and info.main_metric == "rougeL" and info.prompt == "Headline:"
    assert info.sizes == {"train": 1671, "dev": 209, "test": 209}  # repeated articles dropped
    first = load_task("bbc_headlines")
    again = load_task("bbc_headlines")
    assert first.splits["test"]["target"] == again.splits["test"]["target"]
    bodies = [set(first.splits[s]["text"]) for s in ("train", "dev", "test")]
    assert not (bodies[0] & bodies[1]) and not (bodies[0] & bodies[2])


def test_causal_tokenisation_labels_only_the_target_and_keeps_the_prompt(headlines, tokenizer):
    data = tokenize_text2text(headlines, tokenizer, 16, 8, 3, causal=True)["train"]
    row = data[0]
    cut = row["prompt_length"]
    assert len(row["input_ids"]) == len(row["labels"]) > cut
    assert all(v == IGNORE_INDEX for v in row["labels"][:cut])
    assert row["labels"][cut:] == row["input_ids"][cut:]
    assert row["labels"][-1] == tokenizer.eos_token_id
    asked = tokenizer("\nHeadline:", add_special_tokens=False)["input_ids"]
    assert row["input_ids"][cut - len(asked) : cut] == asked  # source truncated, prompt kept
    assert row["task_ids"] == 3 and row["reference"] == headlines.splits["train"][0]["target"]


def test_collator_pads_right_for_training_and_left_for_causal_prompts(headlines, tokenizer):
    rows = list(
        tokenize_text2text(headlines, tokenizer, 24, 8, 0, causal=True)["train"].select(range(4))
    )
    rows[0] = {
        **rows[0],
        "input_ids": rows[0]["input_ids"][:5],
        "labels": rows[0]["labels"][:5],
        "prompt_length": 3,
    }
    collator = Text2TextCollator(tokenizer, causal=True)
    batch = collator(rows)
    assert batch["attention_mask"][0].tolist()[:5] == [1] * 5
    assert (batch["labels"][0, 5:] == IGNORE_INDEX).all()
    prompts = collator.prompts(rows)
    assert prompts["attention_mask"][0, -3:].tolist() == [1, 1, 1]
    assert prompts["attention_mask"][0, 0] == 0  # left padding


def test_seq2seq_tokenisation_puts_the_target_in_labels(headlines, tokenizer):
    row = tokenize_text2text(headlines, tokenizer, 16, 8, 0, causal=False)["dev"][0]
    assert row["prompt_length"] == len(row["input_ids"]) <= 16
    assert IGNORE_INDEX not in row["labels"] and len(row["labels"]) <= 8


def test_classification_task_is_answered_by_label_name(tokenizer):
    data = load_task("rotten_tomatoes", max_examples=8)
    row = tokenize_text2text(data, tokenizer, 32, 8, 0, causal=True)["train"][0]
    name = data.info.label_names[row["gold"]]
    assert row["reference"] == name
    with pytest.raises(ValueError, match="regression"):
        from dataclasses import replace

        tokenize_text2text(
            replace(data, info=replace(data.info, label_names=None)),
            tokenizer,
            32,
            8,
            0,
            causal=True,
        )


def test_generation_metrics_come_from_rouge_score_and_sacrebleu():
    same = rouge(["profits jump at time warner"], ["profits jump at time warner"])
    assert same == {"rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0}
    assert rouge(["cats"], ["dogs"])["rougeL"] == 0.0
    assert rouge(["profits jumped"], ["profit jumps"])["rouge1"] == 1.0  # stemming
    assert bleu(
        ["the cat sat on the mat today"], ["the cat sat on the mat today"]
    ) == pytest.approx(1.0)
    assert bleu(["a b c d"], ["w x y z"]) == 0.0
    info = get_task_info("bbc_headlines")
    metrics = generation_metrics(info, ["a b", "c"], ["a b", "d"])
    assert metrics["main"] == metrics["rougeL"] == pytest.approx(0.5)
    rt = get_task_info("rotten_tomatoes")
    assert label_of(" Positive ", rt.label_names) == 1 and label_of("meh", rt.label_names) == -1
    scored = generation_metrics(rt, ["positive", "meh"], ["positive", "negative"], [1, 0])
    assert scored["accuracy"] == 0.5


def test_label_smoothing_changes_the_loss_and_ignores_unlabelled_positions():
    logits = torch.randn(2, 5, 11)
    labels = torch.randint(0, 11, (2, 5))
    labels[0, :2] = IGNORE_INDEX
    plain = lm_loss(logits, labels, causal=False)
    kept = labels != IGNORE_INDEX
    expected = torch.nn.functional.cross_entropy(logits[kept], labels[kept])
    torch.testing.assert_close(plain, expected)
    assert lm_loss(logits, labels, causal=False, label_smoothing=0.2) != plain
    shifted = lm_loss(logits, labels, causal=True)
    torch.testing.assert_close(
        shifted,
        torch.nn.functional.cross_entropy(logits[:, :-1][kept[:, 1:]], labels[:, 1:][kept[:, 1:]]),
    )


def test_generation_options_are_validated():
    with pytest.raises(ConfigError, match="label_smoothing"):
        TrainConfig(label_smoothing=1.5)
    with pytest.raises(ConfigError, match="num_beams"):
        TrainConfig(num_beams=0)


def test_hub_names_fail_fast_and_clearly_offline(monkeypatch):
    from propetl.backbones import BackboneError, check_backbone
    from propetl.data import TaskUnavailableError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for name in ("xsum", "wmt16-ro-en"):
        assert get_task_info(name).generative
    with pytest.raises(TaskUnavailableError, match="not in the local cache"):
        load_task("xsum")
    with pytest.raises(BackboneError, match="not in the local cache"):
        check_backbone("t5-small")

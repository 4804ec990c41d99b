import json

import pytest
from click.testing import CliRunner

from propetl.cli import cli
from propetl.config import PropetlConfig, TaskHeadSpec
from propetl.storage import storage_report

from .helpers import build

ROBERTA_BASE = {
    "model_type": "roberta",
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "vocab_size": 50265,
    "max_position_embeddings": 514,
    "type_vocab_size": 1,
    "pad_token_id": 1,
}


@pytest.fixture
def roberta_base_config(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(ROBERTA_BASE))
    return tmp_path


def run_storage(*args):
    result = CliRunner().invoke(cli, ["storage", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_paper_headline_for_roberta_base(roberta_base_config):
    report = json.loads(
        run_storage(
            "--backbone",
            str(roberta_base_config),
            "--petl",
            "adapter",
            "--bottleneck",
            "64",
            "--keep",
            "0.5",
            "--json",
        )
    )
    assert report["backbone_params"] == pytest.approx(124.6e6, rel=0.01)
    assert report["prototype_params"] == 768 * 64 * 2 + 64 + 768
    assert report["percent_of_backbone"] == pytest.approx(0.11, abs=0.005)
    assert report["baseline_percent_of_backbone"] == pytest.approx(0.95, abs=0.01)
    assert report["ratio_to_baseline"] == pytest.approx((32 + 12) / (32 * 12), abs=0.005)


def test_text_report_and_more_tasks(roberta_base_config):
    text = run_storage("--backbone", str(roberta_base_config), "--petl", "lora", "--tasks", "3")
    assert "3 task(s)" in text and "% of the backbone" in text
    one = json.loads(run_storage("--backbone", str(roberta_base_config), "--json"))
    three = json.loads(
        run_storage("--backbone", str(roberta_base_config), "--json", "--tasks", "3")
    )
    assert three["propetl_fp32_eq"] - one["propetl_fp32_eq"] == pytest.approx(
        2 * one["per_task_fp32_eq"]
    )


def test_bad_values_are_refused_without_traceback(roberta_base_config):
    result = CliRunner().invoke(
        cli, ["storage", "--backbone", str(roberta_base_config), "--keep", "1.5"]
    )
    assert result.exit_code != 0 and "keep must be in (0, 1]" in result.output
    assert "Traceback" not in result.output


def test_report_of_a_saved_model_counts_bytes_on_disk(tmp_path):
    model = build(tasks=(TaskHeadSpec("a", 2), TaskHeadSpec("b", 2)), bottleneck=16)
    model.save_pretrained(tmp_path)
    report = storage_report(model, tmp_path)
    assert report.num_tasks == 2
    assert report.disk_bytes["task:a:masks"] < report.disk_bytes["prototype"]
    none = storage_report(build(sharing="none", tasks=(TaskHeadSpec("a", 2),), bottleneck=16))
    assert none.ratio_to_baseline == pytest.approx(1.0)
    assert PropetlConfig(petl="lora").keep == 0.5  # the product's (the scripts' was 0.1)
    assert PropetlConfig(petl="prefix").keep == 0.1 and PropetlConfig().keep == 0.5

"""The Sweeps tab's reference points come from bench/pareto.py's rows (PEFT methods, mean over
seeds), with bench/accuracy.py filling in what pareto.json has not measured."""

from __future__ import annotations

import json

from matplotlib.figure import Figure


def _row(method, family, settings, task="rotten_tomatoes", nbytes=4000, acc=0.7, seeds=(1, 2, 3)):
    return {
        "method": method,
        "family": family,
        "settings": settings,
        "task": task,
        "marginal": family == "ProPETL (added task)",
        "bytes_per_task": nbytes,
        "params_per_task": 100,
        "lr": 1e-3,
        "seeds": list(seeds),
        "acc_mean": acc,
        "acc_se": 0.01,
    }


def test_reference_points_read_pareto_rows_and_leave_out_propetls_own(tmp_path):
    from app import views

    pareto = tmp_path / "pareto.json"
    pareto.write_text(
        json.dumps(
            [
                _row("peft_lora_r8", "PEFT", {"type": "lora", "r": 8}, nbytes=300_000, acc=0.80),
                _row("peft_vera_r256", "PEFT", {"type": "vera", "r": 256}, nbytes=6_000, acc=0.75),
                _row("head_only", "head only", {}, nbytes=3_000, acc=0.58),
                _row("peft_ia3", "PEFT", {"type": "ia3"}, task="tweet_sentiment", acc=0.6),
                _row("propetl_added_adapter_b64_k0.5", "ProPETL (added task)", {"petl": "adapter"}),
                {"method": "broken"},
            ]
        )
    )
    accuracy = tmp_path / "accuracy.json"
    accuracy.write_text(
        json.dumps(
            {
                "peft_lora_r8": {"task_bytes": 307_961, "accuracy": 0.8033},
                "none_adapter": {"task_bytes": 1_190_768, "accuracy": 0.8009},
            }
        )
    )
    points = views.reference_points(accuracy, pareto)
    labels = {t: [p[2] for p in ps] for t, ps in points.items()}
    assert labels["rotten_tomatoes"] == [
        "PEFT LoRA r8 (mean of 3 seeds, minilm-l6)",
        "PEFT VeRA r256 (mean of 3 seeds, minilm-l6)",
        "head only (mean of 3 seeds, minilm-l6)",
        "ordinary adapter (measured, minilm-l6)",
    ]
    assert labels["tweet_sentiment"] == ["PEFT IA3 (mean of 3 seeds, minilm-l6)"]
    assert (6_000.0, 0.75, labels["rotten_tomatoes"][1]) in points["rotten_tomatoes"]


def test_without_pareto_rows_the_accuracy_benchmark_still_gives_references(tmp_path):
    from app import plots, views

    accuracy = tmp_path / "accuracy.json"
    accuracy.write_text(json.dumps({"peft_lora_r8": {"task_bytes": 307_961, "accuracy": 0.8}}))
    points = views.reference_points(accuracy, tmp_path / "absent.json")
    assert points == {"rotten_tomatoes": [(307_961.0, 0.8, "PEFT LoRA r8 (measured, minilm-l6)")]}
    assert views.reference_points(tmp_path / "no.json", tmp_path / "absent.json") == {}
    figure = plots.pareto({"rotten_tomatoes": [(5_000.0, 0.7, "keep=0.1")]}, points)
    assert isinstance(figure, Figure)
    labels = figure.axes[0].get_legend_handles_labels()[1]
    assert "PEFT LoRA r8 (measured, minilm-l6)" in labels

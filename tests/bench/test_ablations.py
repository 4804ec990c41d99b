"""The ablations reuse exactly the accuracy benchmark's runs that they would train again."""

from __future__ import annotations

from dataclasses import replace

from bench.ablations import REUSED, reused_runs, run_names
from bench.common import BenchSettings
from propetl.config import DEFAULT_MASK_LR, PAPER_MASK_LR


def _accuracy_rows(seeds: int = 1, mask_lr: float | None = DEFAULT_MASK_LR["adapter"]) -> dict:
    return {
        source: {
            "accuracy": 0.8,
            "accuracy_per_seed": [0.8] * seeds,
            "task_bytes": 1,
            "train_seconds": 1.0,
            "mask_lr": mask_lr,
        }
        for source in (*REUSED.values(), "propetl_lora")
    }


def test_default_settings_reuse_the_matching_runs() -> None:
    settings = BenchSettings()
    reused = reused_runs(_accuracy_rows(), run_names(settings), settings)
    assert set(reused) == {"learned_0.5", "none_adapter"}
    assert reused["learned_0.5"]["keep"] == 0.5 and reused["learned_0.5"]["masks"] == "learned"
    assert reused["none_adapter"]["keep"] is None
    assert reused["learned_0.5"]["reused_from"] == "accuracy.json (propetl_adapter)"


def test_other_settings_or_seeds_train_afresh() -> None:
    planned = run_names(BenchSettings())
    for settings in (
        replace(BenchSettings(), epochs=0.5),
        replace(BenchSettings(), seeds=(1,)),
        BenchSettings.smoke_settings(BenchSettings().out),
    ):
        assert reused_runs(_accuracy_rows(), planned, settings) == {}
    settings = BenchSettings()
    assert reused_runs(_accuracy_rows(seeds=3), planned, settings) == {}


def test_masks_trained_at_another_rate_are_not_reused() -> None:
    settings = BenchSettings()
    planned = run_names(settings)
    for rate in (PAPER_MASK_LR["adapter"], None):  # an earlier default, or not recorded
        reused = reused_runs(_accuracy_rows(mask_lr=rate), planned, settings)
        assert set(reused) == {"none_adapter"}  # the ordinary adapter has no masks

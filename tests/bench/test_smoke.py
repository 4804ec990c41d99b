"""The benchmark scripts run end to end on a tiny model (figures are not checked here)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

#: The parts that mostly wait on servers starting, run beside the ones that compute (each part
#: writes its own JSON; a last call with no part writes the summary from all of them).
SERVER_PARTS = "load,serve_load"
OTHER_PARTS = "storage,serving,accuracy,multitask,ablations,generative,continual,pareto"


@pytest.mark.timeout(720)
def test_bench_smoke_writes_every_result(tmp_path):
    def part(only: str) -> tuple[subprocess.Popen, Path]:
        log = tmp_path / f"run_all-{only.split(',')[0] or 'summary'}.log"
        with log.open("w") as out:  # a file, not a pipe that fills while the other part runs
            return subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bench.run_all",
                    "--smoke",
                    "--only",
                    only,
                    "--out",
                    str(tmp_path),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            ), log

    def finish(run: subprocess.Popen, log: Path) -> None:
        assert run.wait(timeout=700) == 0, log.read_text()[-3000:]

    runs = [part(SERVER_PARTS), part(OTHER_PARTS)]
    for run, log in runs:
        finish(run, log)
    finish(*part(""))  # every part's figures are saved: the summary and the plots
    from bench.run_all import PARTS

    assert set(PARTS) == set(SERVER_PARTS.split(",")) | set(OTHER_PARTS.split(","))
    summary = json.loads((tmp_path / "summary.json").read_text())
    for key in (
        "rt_acc.propetl_adapter",
        "rt_acc.peft_lora_r8",
        "rt_acc.head_only",
        "task_bytes.propetl_adapter_marginal",
        "infer_ratio.propetl_vs_bare",
        "switch_ms.propetl_loaded",
        "load_ms.peft_hotswap",
        "mixed5_ratio.peft",
        "train_sps.peft_lora_r8",
        "seeds",
        "machine",
    ):
        assert key in summary, key
    for name in ("accuracy", "serving", "multitask", "storage", "ablations", "load"):
        assert (tmp_path / f"{name}.json").is_file()
    for name in ("predict_c8", "predict_c32", "submit_c8"):  # a real server, loopback
        assert summary[f"load.{name}.requests_per_s"] > 0
        assert summary[f"load.{name}.errors_and_lost"] == 0
    assert summary["continual.old_tasks_unchanged"] is True  # verified by sha256
    assert 0 <= summary["pareto.rotten_tomatoes.propetl_added_adapter_b16_k0.5.acc_mean"] <= 1
    assert isinstance(json.loads((tmp_path / "pareto.json").read_text()), list)
    assert 0 <= summary["continual.added_acc"] <= 1 and summary["continual.added_bytes"] > 0
    ablations = json.loads((tmp_path / "ablations.json").read_text())
    assert ablations["complete"] and set(ablations["comparisons"]) == {"0.1"}
    assert {"learned_0.1", "random_0.1", "none_adapter"} <= set(ablations["runs"])
    assert 0 <= ablations["runs"]["learned_0.1"]["kept_moved"] <= 1
    assert (tmp_path / "ablations_keep.png").stat().st_size > 10_000
    assert (tmp_path / "accuracy_vs_bytes.png").stat().st_size > 10_000
    storage = json.loads((tmp_path / "storage.json").read_text())
    assert storage["roberta-base"]["adapter"]["propetl_percent"] == pytest.approx(0.109, abs=0.002)

"""A 1,000-task prototype over a tiny backbone: masks stay bit-packed in memory, only a
bounded number of tasks is materialised, and adding one more task stays cheap."""

from __future__ import annotations

import math
import statistics
import time

import pytest
import torch

from bench.serve_load import write_many_task_model
from propetl.backbones import load_tokenizer
from propetl.checkpoint import load_model, load_task
from propetl.inference import Predictor

MANY = 1000


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("many") / "model"
    write_many_task_model(path, "tiny-bert", MANY)
    return path


def test_masks_stay_packed_and_materialised_tasks_are_bounded(folder):
    model = load_model(folder)
    assert len(model.task_names) == MANY
    bank = model.banks["adapter"]
    per_task_bits = bank.mask_bits_per_task()
    packed = [b for t in bank.tasks.values() for b in t.buffers()]
    assert all(b.dtype == torch.uint8 for b in packed), "a task holds unpacked masks"
    assert sum(b.numel() for b in packed) == MANY * sum(
        math.ceil(bank.num_layers * math.prod(s) / 8) for s in bank.masked.values()
    )
    assert per_task_bits // 8 <= sum(b.numel() for b in bank.tasks["t0000"].buffers())
    bank.cache_limit = 16
    predictor = Predictor(model, load_tokenizer("tiny-bert"), max_length=16)
    assert len(bank.cached_tasks) == 16  # only as many as the cache keeps, up front
    names = model.task_names
    mixed = predictor.predict_mixed([(t, (f"text {i}", None)) for i, t in enumerate(names[::10])])
    assert len(bank.cached_tasks) <= 16
    for i, (task, row) in enumerate(zip(names[::10], mixed, strict=True)):
        if i % 20 == 0:  # the same answer as the task alone
            [alone] = predictor.predict(task, [(f"text {i}", None)])
            assert row["label"] == alone["label"]
            assert row["scores"] == pytest.approx(alone["scores"], abs=1e-5)


def test_one_more_task_loads_in_milliseconds(folder):
    model = load_model(
        folder, tasks=[t for t in (f"t{i:04d}" for i in range(MANY)) if t != "t0500"]
    )
    times = []
    for _ in range(5):
        started = time.perf_counter()
        load_task(model, folder, "t0500")
        times.append((time.perf_counter() - started) * 1e3)
        model.remove_task("t0500")
    # ~2 ms on an idle core; generous for a shared CI machine, far below the O(tasks)
    # walk of every task's modules (hundreds of ms at 1,000 tasks)
    assert statistics.median(times) < 40, times

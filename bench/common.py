"""Shared pieces of the benchmarks: settings, timing, machine description, JSON output."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results"
#: Hand-written, dated readings of a part's figures (`<part>.md`), kept apart from the figures
#: so that a rebuild of the part's section places them again instead of dropping them.
READINGS = Path(__file__).parent / "readings"


def reading(part: str) -> list[str]:
    """The lines of the part's reading (none when it has no reading file)."""
    path = READINGS / f"{part}.md"
    return [*path.read_text().strip("\n").split("\n"), ""] if path.is_file() else []


@dataclass(frozen=True)
class BenchSettings:
    """Full runs use the bundled MiniLM and whole splits; smoke runs check the scripts work."""

    backbone: str = "minilm-l6"
    max_length: int = 64
    batch_size: int = 32
    epochs: float = 1.0
    max_examples: int | None = None
    multitask_examples: int | None = 3000
    seeds: tuple[int, ...] = (42,)
    reps: int = 200
    out: Path = RESULTS
    smoke: bool = False

    @classmethod
    def smoke_settings(cls, out: Path) -> BenchSettings:
        return cls(
            backbone="tiny-bert",
            max_length=32,
            batch_size=8,
            epochs=1.0,
            max_examples=24,
            multitask_examples=24,
            reps=5,
            out=out,
            smoke=True,
        )


def machine() -> str:
    threads = torch.get_num_threads()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__} ({threads} threads), {gpu}"
    )


def median_ms(fn: Callable[[], object], reps: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1e3)
    return statistics.median(times)


def write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str))


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())

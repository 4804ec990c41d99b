"""Seeded, machine-independent train/dev/test splitting and conversion to `datasets`."""

from __future__ import annotations

import datasets
import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from .task import LABEL, SPLITS, TEXT, TEXT_PAIR

#: Fraction of the data in dev and in test when a split is made here (train gets the rest).
HELD_OUT_FRACTION = 0.1
#: Fewest examples per class for which a stratified 80/10/10 split reaches every split.
MIN_PER_CLASS_FOR_SPLIT = 10


def text_columns(df: pd.DataFrame) -> list[str]:
    """The normalised text columns present in `df`."""
    return [c for c in (TEXT, TEXT_PAIR) if c in df.columns]


def dedupe_and_sort(df: pd.DataFrame) -> tuple[pd.DataFrame, int, int]:
    """Drop repeated texts (and texts seen with different labels); sort by text.

    Returns the clean frame, the number of duplicate rows dropped and the number of texts
    dropped because their copies disagree on the label.
    """
    keys = text_columns(df)
    n_labels = df.groupby(keys, sort=False)[LABEL].transform("nunique")
    conflicting = int(df.loc[n_labels > 1, keys].drop_duplicates().shape[0])
    kept = df[n_labels == 1]
    unique = kept.drop_duplicates(subset=keys)
    duplicates = len(kept) - len(unique)
    ordered = unique.sort_values(keys, kind="mergesort").reset_index(drop=True)
    return ordered, duplicates, conflicting


def seeded_permutation(n: int, seed: int) -> np.ndarray:
    """A permutation of range(n) that is the same on every machine and numpy version."""
    return np.random.RandomState(seed).permutation(n)


def split_80_10_10(df: pd.DataFrame, seed: int, *, stratify: bool) -> dict[str, pd.DataFrame]:
    """Seeded 80/10/10 split (stratified by label when asked); each split in shuffled order."""
    strat = df[LABEL] if stratify else None
    train, rest = train_test_split(
        df, test_size=2 * HELD_OUT_FRACTION, random_state=seed, stratify=strat
    )
    strat_rest = rest[LABEL] if stratify and rest[LABEL].value_counts().min() >= 2 else None
    dev, test = train_test_split(rest, test_size=0.5, random_state=seed, stratify=strat_rest)
    return {"train": train, "dev": dev, "test": test}


def shuffle_frame(df: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Rows of `df` in a seeded order."""
    return df.iloc[seeded_permutation(len(df), seed)].reset_index(drop=True)


def features_for(pair: bool, regression: bool) -> datasets.Features:
    """The `datasets` schema of a loaded split."""
    cols: dict[str, datasets.Value] = {TEXT: datasets.Value("string")}
    if pair:
        cols[TEXT_PAIR] = datasets.Value("string")
    cols[LABEL] = datasets.Value("float32" if regression else "int64")
    return datasets.Features(cols)


def to_dataset_dict(
    frames: dict[str, pd.DataFrame], *, pair: bool, regression: bool
) -> datasets.DatasetDict:
    """Turn split frames into a `DatasetDict` with only the normalised columns."""
    features = features_for(pair, regression)
    out = {}
    for name in SPLITS:
        frame = frames[name].reset_index(drop=True)
        columns = {col: frame[col].tolist() for col in features}
        out[name] = datasets.Dataset.from_dict(columns, features=features)
    return datasets.DatasetDict(out)


def cap_splits(splits: datasets.DatasetDict, max_examples: int | None) -> datasets.DatasetDict:
    """Keep at most `max_examples` rows of each split (a deterministic prefix)."""
    if max_examples is None:
        return splits
    if max_examples < 1:
        raise ValueError("max_examples must be at least 1")
    return datasets.DatasetDict(
        {k: ds.select(range(min(len(ds), max_examples))) for k, ds in splits.items()}
    )

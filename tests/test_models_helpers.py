"""Shared helpers for the models/ensemble tests: processed adult and rossmann splits (no tests here)."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import polars as pl

ADULT_CATS = ["workclass", "education", "marital-status", "occupation", "relationship", "race"]
ADULT_CONTS = ["age", "fnlwgt", "education-num"]


def data_path(name: str) -> Path:
    try:
        from pipekit.datasets import path

        return Path(path(name))
    except ImportError:
        root = os.environ.get("PIPEKIT_DATA", str(Path(__file__).resolve().parents[2] / "shared" / "data"))
        return Path(root) / name


class StandInSplit:
    """Plain-Polars processed split with the Tabular split contract (.xs/.ys/.cat_names/.y_vocab)."""

    def __init__(self, xs, ys, cat_names, cont_names, y_vocab, signature):
        self.xs, self.ys, self.cat_names, self.cont_names = xs, ys, cat_names, cont_names
        self.y_names, self.y_vocab, self.procs_signature = ["salary"], y_vocab, signature


def _standin(df: pl.DataFrame, train_idx, valid_idx):
    train = df[train_idx]
    cols, cat_names = [], []
    for c in ADULT_CATS:
        vocab = sorted(train[c].drop_nulls().unique().to_list())
        mapping = {v: i + 1 for i, v in enumerate(vocab)}
        cols.append(df[c].replace_strict(mapping, default=0, return_dtype=pl.Int64).alias(c))
        cat_names.append(c)
    for c in ADULT_CONTS:
        med = train[c].median()
        if train[c].null_count():
            cols.append(df[c].is_null().cast(pl.Int64).alias(f"{c}_na") + 1)
            cat_names.append(f"{c}_na")
        filled = df[c].cast(pl.Float64).fill_null(med)
        mean, std = filled[train_idx].mean(), filled[train_idx].std()
        cols.append(((filled - mean) / std).alias(c))
    xs = pl.DataFrame(cols)
    y_vocab = sorted(df["salary"].unique().to_list())
    ys = pl.DataFrame({"salary": df["salary"].replace_strict({v: i for i, v in enumerate(y_vocab)},
                                                              return_dtype=pl.Int64)})
    conts = [c for c in xs.columns if c not in cat_names]
    mk = lambda idx: StandInSplit(xs[idx], ys[idx], cat_names, conts, y_vocab, "standin")  # noqa: E731
    return mk(train_idx), mk(valid_idx)


@lru_cache(maxsize=None)
def adult(n_rows: int | None = 12000, seed: int = 42):
    """(train, valid) processed adult splits: 20% valid, seeded, optionally the first ``n_rows`` rows."""
    df = pl.read_csv(data_path("adult_sample") / "adult.csv")
    if n_rows:
        df = df.head(n_rows)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(df.height)
    n_valid = int(0.2 * df.height)
    return _standin(df, np.sort(perm[n_valid:]), np.sort(perm[:n_valid]))

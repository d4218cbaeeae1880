"""Shared helpers for the models/ensemble tests: processed adult splits from the real ``Tabular``, and a small
mnist_tiny learner (no tests here)."""

from __future__ import annotations

import warnings
from functools import lru_cache
from typing import Any

import polars as pl

from pipekit.data.splitters import RandomSplitter
from pipekit.datasets import path
from pipekit.tabular import Categorify, FillMissing, Normalize, Tabular

ADULT_CATS = ["workclass", "education", "marital-status", "occupation", "relationship", "race"]
ADULT_CONTS = ["age", "fnlwgt", "education-num"]


@lru_cache(maxsize=None)
def adult_tab(n_rows: int | None = 12000, procs: tuple = (Categorify, FillMissing, Normalize)) -> Tabular:
    """adult.csv (optionally its first ``n_rows`` rows) processed by ``procs``, 20% valid, seed 42."""
    df = pl.read_csv(path("adult_sample") / "adult.csv")
    if n_rows:
        df = df.head(n_rows)
    return Tabular(df, procs=list(procs), cat_names=ADULT_CATS, cont_names=ADULT_CONTS, y_names="salary",
                   splits=RandomSplitter(valid_pct=0.2, seed=42))


def adult(n_rows: int | None = 12000):
    """(train, valid) processed adult splits."""
    tab = adult_tab(n_rows)
    return tab.train, tab.valid


def rossmann_open_tab(n_rows: int = 3000) -> Tabular:
    """The first ``n_rows`` open days of rossmann_sample, Sales as a regression target, categorified and filled."""
    df = pl.read_csv(path("rossmann_sample") / "train.csv", schema_overrides={"StateHoliday": pl.Utf8})
    return Tabular(df.filter(pl.col("Open") == 1).head(n_rows), procs=[Categorify, FillMissing],
                   cat_names=["Store", "DayOfWeek", "StateHoliday", "Promo", "SchoolHoliday"],
                   cont_names=["Customers"], y_names="Sales", splits=RandomSplitter(valid_pct=0.2, seed=42))


def mnist_eighth_learner(metrics: Any = None) -> Any:
    """An untrained Learner: mnist_tiny's 3s and 7s (an eighth of them), grey, a small CNN, seed 0."""
    import pipekit
    from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, get_image_files, parent_label
    from pipekit.learn import Learner, simple_cnn
    from pipekit.vision import ImageBlock

    dblock = DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_items=lambda p: get_image_files(p)[::8],
                       splitter=GrandparentSplitter(), get_y=parent_label)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the test/ folder is in neither subset
        dls = dblock.dataloaders(path("mnist_tiny"), bs=16, seed=0)
    pipekit.set_seed(0)
    return Learner(dls, simple_cnn(n_in=1, n_out=2), metrics=metrics)

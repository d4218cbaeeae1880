"""The same table gives the same processing whatever path it comes by (a frame, a LazyFrame, a Parquet or a CSV
file, process_to_parquet), and bad rows get the same DataError on every path; on slices of the real data sets."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import polars as pl

from pipekit.data import read_table
from pipekit.data.splitters import TimeSplitter
from pipekit.tabular import Tabular

DATA = Path(os.environ.get("PIPEKIT_DATA", "/nonexistent"))
ADULT, ROSSMANN = DATA / "adult_sample" / "adult.csv", DATA / "rossmann_sample"


# 6. a fractional TimeSplitter cutoff: dates, datetimes and text dates give the same validation rows
def test_a_fractional_time_cutoff_splits_dates_datetimes_and_text_alike(tmp_path):
    train = read_table(ROSSMANN / "train.csv")
    dates = train.with_columns(pl.col("Date").str.to_date())
    lo, hi = dates["Date"].min(), dates["Date"].max()
    share = 0.25
    assert ((hi - lo).days * (1 - share)) % 1  # the cutoff falls within a day
    splitter = TimeSplitter("Date", share)
    valid = {"text": splitter(train)[1], "date": splitter(dates)[1],
             "datetime": splitter(dates.with_columns(pl.col("Date").cast(pl.Datetime)))[1]}
    cut = lo + (hi - lo) * (1 - share)  # a date: the fraction of a day dropped
    assert (dates["Date"][valid["date"]] > cut).all() and len(valid["date"]) == int((dates["Date"] > cut).sum())
    assert np.array_equal(valid["date"], valid["text"]) and np.array_equal(valid["date"], valid["datetime"])
    # and through Tabular, from the CSV (text) and from Parquet (dates)
    csv, pq = tmp_path / "train.csv", tmp_path / "train.parquet"
    train.head(5000).write_csv(csv)
    dates.head(5000).write_parquet(pq)
    kw = dict(cat_names=["Store"], cont_names=["Customers"], y_names="Sales", splits=splitter)
    a, b = Tabular(csv, **kw), Tabular(pq, **kw)
    assert np.array_equal(a.valid_idx, b.valid_idx) and a.frame.equals(b.frame)

"""The same table gives the same processing whatever path it comes by (a frame, a LazyFrame, a Parquet or a CSV
file, process_to_parquet), and bad rows get the same DataError on every path; on slices of the real data sets."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import pipekit
from pipekit.core.errors import DataError
from pipekit.data import read_table
from pipekit.data.splitters import RandomSplitter, TimeSplitter
from pipekit.tabular import Tabular, TabularDataLoaders, TabularProcessor
from pipekit.tabular.stream import process_to_parquet

DATA = Path(os.environ.get("PIPEKIT_DATA", "/nonexistent"))
ADULT, ROSSMANN = DATA / "adult_sample" / "adult.csv", DATA / "rossmann_sample"


@pytest.fixture(scope="module")
def stores() -> pl.DataFrame:
    """Rossmann's daily rows with their store's metadata: the store columns are pandas floats ('11.0', NaN)."""
    train, store = read_table(ROSSMANN / "train.csv"), read_table(ROSSMANN / "store.csv")
    return train.head(3000).join(store, on="Store", how="left")


def _same_everywhere(tabs: dict[str, Tabular]) -> None:
    (first, ref), *others = tabs.items()
    for name, tab in others:
        assert tab.classes == ref.classes, (first, name)
        assert tab.frame.equals(ref.frame), (first, name)


# 1. a float-valued category: its vocabulary sorts as numbers, written as the frame writes them, on every path
def test_float_valued_categories_have_one_vocabulary_on_every_path(tmp_path, stores):
    csv, pq = tmp_path / "stores.csv", tmp_path / "stores.parquet"
    stores.write_csv(csv)
    stores.write_parquet(pq)
    kw = dict(cat_names=["CompetitionOpenSinceMonth", "StoreType"], cont_names=["Customers"], y_names="Sales",
              splits=RandomSplitter(0.2, seed=0))
    tabs = {"frame": Tabular(stores, **kw), "lazy": Tabular(stores.lazy(), **kw), "parquet": Tabular(pq, **kw),
            "csv": Tabular(csv, **kw), "csv as str": Tabular(str(csv), **kw)}
    months = [f"{m}.0" for m in range(1, 13)]
    assert tabs["csv"].classes["CompetitionOpenSinceMonth"] == ["#na#"] + months  # 2.0 before 10.0
    _same_everywhere(tabs)
    # numbers kept as text sort as text, as fastai sorts them: '10.0' before '2.0'
    as_text = stores.with_columns(pl.col("CompetitionOpenSinceMonth").cast(pl.String))
    assert Tabular(as_text, **kw).classes["CompetitionOpenSinceMonth"] == ["#na#"] + sorted(months)


# 2. int ids a pandas CSV writes as floats (2012.0) are the training ids on every path
def test_new_rows_from_a_pandas_csv_match_whole_number_floats(tmp_path, stores):
    df = stores.with_columns(pl.col("Promo2SinceYear").cast(pl.Int64))  # an int id column with gaps
    tab = Tabular(df, cat_names=["Promo2SinceYear", "StoreType"], cont_names=["Customers"], y_names="Sales")
    assert tab.classes["Promo2SinceYear"] == ["#na#"] + [str(y) for y in range(2009, 2016)]
    new = df.head(300).to_pandas()  # Int64 with nulls: float64 in pandas, '2012.0' and '' in its CSV
    new.to_csv(tmp_path / "new.csv", index=False)
    new.to_parquet(tmp_path / "new.parquet")
    assert "2012.0" in (tmp_path / "new.csv").read_text()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every value is found: no 'never seen in training' warning
        paths = {"frame": tab.new(df.head(300)), "pandas": tab.new(new), "parquet": tab.new(tmp_path / "new.parquet"),
                 "csv": tab.new(tmp_path / "new.csv")}
    for name, got in paths.items():
        assert got.cats.equals(tab.train.cats.head(300)), name


# 3. from_csv strips the spaces after commas; new files given to test_dl are read the same way
def test_test_dl_reads_a_csv_as_from_csv_read_the_training_file(tmp_path):
    f = tmp_path / "adult.csv"
    f.write_bytes(b"".join(ADULT.read_bytes().splitlines(keepends=True)[:501]))  # ', Private' as written
    dls = TabularDataLoaders.from_csv(f, cat_names=["workclass", "education"], cont_names=["age"], y_names="salary",
                                      bs=64, seed=0)
    assert "Private" in dls.tabular.classes["workclass"]
    train = dls.tabular.frame.select("workclass", "education").to_numpy()
    for recipe in (dls.recipe, pipekit.load(pipekit.save(dls.recipe, tmp_path / "recipe.pipekit"))):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # every category is found
            cats = recipe.new_datasets(f).gather(np.arange(500))[0]
        assert np.array_equal(cats.numpy(), train)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        batch = next(iter(dls.test_dl(f)))
    assert np.array_equal(batch[0].cpu().numpy(), train[:len(batch[0])])


# 4. a class seen only in validation rows: the same DataError from Tabular and process_to_parquet
def test_a_class_only_in_validation_rows_is_refused_on_the_lazy_path_too(tmp_path):
    adult = read_table(ADULT).head(3000)
    rare = adult["race"] == " Other"
    table = pl.concat([adult.filter(~rare).head(1500), adult.filter(rare)]).with_columns(
        (pl.int_range(pl.len()) >= 1200).alias("fold"))
    pq = tmp_path / "adult.parquet"
    table.write_parquet(pq)
    first = 1500  # the first ' Other' row, a validation row
    msg = (f"{pq}: target column 'race' has value ' Other' at row {first} that is not among the training classes "
           "[' Amer-Indian-Eskimo', ' Asian-Pac-Islander', ' Black', ' White']; keep every class in the training rows.")
    kw = dict(cat_names=["workclass"], cont_names=["age"], y_names="race")
    with pytest.raises(DataError) as eager:
        Tabular(pq, splits=(np.flatnonzero(~table["fold"]), np.flatnonzero(table["fold"])), **kw)
    with pytest.raises(DataError) as lazy:
        process_to_parquet(pq, tmp_path / "out.parquet", valid=pl.col("fold"), **kw)
    assert str(eager.value) == str(lazy.value) == msg
    assert not (tmp_path / "out.parquet").exists()
    with pytest.raises(DataError, match=r"value ' Other' at row 1500 that is not among the training classes"):
        TabularProcessor(cat_names=["workclass"], cont_names=["age"], y_names="race").fit_lazy(
            table.lazy(), ~pl.col("fold"))


# 5. text in a continuous column of a CSV, before and after the rows its types are read from
@pytest.mark.parametrize("row", [2500, 25_000])
def test_text_in_a_continuous_column_is_named_by_process_to_parquet(tmp_path, row):
    adult = read_table(ADULT).head(row + 500).with_columns(pl.col("age").cast(pl.String))
    f = tmp_path / "adult.csv"
    adult.with_columns(pl.when(pl.int_range(pl.len()) == row).then(pl.lit("?")).otherwise("age").alias("age")
                       ).write_csv(f)
    msg = (f"{f}: continuous column 'age' holds text that is not a number, e.g. '?' at row {row} (1 such rows); "
           "clean the column or list it in cat_names.")
    kw = dict(cat_names=["workclass"], cont_names=["age"], y_names="salary")
    with pytest.raises(DataError) as eager:
        Tabular(f, **kw)
    with pytest.raises(DataError) as lazy:
        process_to_parquet(f, tmp_path / "out.parquet", **kw)
    assert str(eager.value) == str(lazy.value) == msg
    # the same file without the '?' is processed alike on both paths
    clean = tmp_path / "clean.csv"
    adult.write_csv(clean)
    process_to_parquet(clean, tmp_path / "clean.parquet", **kw)
    assert Tabular.from_processed(tmp_path / "clean.parquet").frame.equals(Tabular(clean, **kw).frame)


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


def test_from_csv_reads_a_tsv_file_with_tabs_as_test_dl_does(tmp_path):
    adult = read_table(ADULT).head(400)
    tsv = tmp_path / "adult.tsv"
    adult.write_csv(tsv, separator="\t")
    dls = TabularDataLoaders.from_csv(tsv, y_names="salary", cat_names=["workclass"], cont_names=["age"],
                                      valid_idx=list(range(300, 400)), bs=64, seed=0)
    assert len(dls.train.dataset) + len(dls.valid.dataset) == 400
    new = dls.test_dl(tsv)
    assert len(new.dataset) == 400


@pytest.mark.parametrize("name", ["adult[2024].csv", "adult*.csv", "adult?.tsv", "adult[1].parquet", "adult[1].arrow"])
def test_a_file_name_with_glob_characters_is_that_file_never_a_pattern(tmp_path, name):
    """``data[2024].csv`` was a pattern matching no file (Polars globbed it), and ``adult*.csv`` matched the other
    tables beside it too, read as one: a file name is the file, on every path that reads one."""
    df = pl.read_csv(ADULT, n_rows=400)
    other = pl.read_csv(ADULT, n_rows=50, skip_rows_after_header=1000)
    other.write_csv(tmp_path / "adult1.csv")  # what adult*.csv and adult?.csv matched as patterns
    other.write_csv(tmp_path / "adult1.tsv", separator="\t")
    target = tmp_path / name
    if name.endswith(".csv"):
        df.write_csv(target)
    elif name.endswith(".tsv"):
        df.write_csv(target, separator="\t")
    elif name.endswith(".parquet"):
        df.write_parquet(target)
    else:
        df.write_ipc(target)
    assert read_table(target).equals(df)
    splits = (np.arange(300), np.arange(300, 400))
    kw = dict(cat_names=["workclass", "education"], cont_names=["age", "fnlwgt"], y_names="salary", splits=splits)
    from_file, from_frame = Tabular(target, **kw), Tabular(df, **kw)
    assert from_file.train.xs.equals(from_frame.train.xs) and from_file.valid.xs.equals(from_frame.valid.xs)
